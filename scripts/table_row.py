#!/usr/bin/python3
"""Puts one row into a Markdown table kept between two marker lines of a file.

Usage: table_row.py FILE MARKER KEY ROW
The table lies between the line MARKER and the next "<!-- end -->". The row whose first cell
is KEY is replaced; without one, ROW is added at the end of the table. The scripts that measure
variants use it, so that rerunning one variant replaces its row. The file is replaced atomically.
"""
import os
import sys


def main():
    path, marker, key, row = sys.argv[1:]
    lines = open(path).read().split("\n")
    try:
        start = lines.index(marker)
        end = lines.index("<!-- end -->", start)
    except ValueError:
        sys.exit(f"table_row.py: {path} has no table between '{marker}' and '<!-- end -->'")
    for i in range(start + 1, end):
        if lines[i].startswith(f"| {key} |"):
            lines[i] = row
            break
    else:
        lines.insert(end, row)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
