#!/usr/bin/python3
"""Lists functions in src/ and include/ longer than a limit (default 80 lines); exits 1 if any.

A function is a definition at namespace or class level whose body's braces are matched line by
line: the heuristic fits this code base's clang-format style (opening brace at the end of the
signature line). Lambdas and local classes count as part of the function that holds them.

Usage: scripts/function_lengths.py [--limit N] [ROOT]
"""
import argparse
import pathlib
import re
import sys

NOT_FUNCTIONS = ("namespace", "struct", "class", "enum", "union", "extern")


def long_functions(root, limit):
    found = []
    files = sorted(root.glob("src/**/*.cpp")) + sorted(root.glob("src/**/*.h")) + sorted(root.glob("include/**/*.h"))
    for path in files:
        lines = path.read_text(encoding="utf-8").split("\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            opens = re.match(r"^( {0,2})(\S.*)\{\s*$", line)
            continued = opens and i > 0 and "(" in lines[i - 1] and not lines[i - 1].rstrip().endswith(";")
            if not (opens and ("(" in line or continued)):
                i += 1
                continue
            signature = line.strip()
            if signature.startswith(NOT_FUNCTIONS) or "=" in signature.split("(")[0]:
                i += 1
                continue
            depth, j = 0, i
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                if depth <= 0 and j > i:
                    break
                j += 1
            if j - i + 1 > limit:
                found.append((j - i + 1, path.relative_to(root), i + 1, signature[:90]))
            i = j + 1
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=80)
    parser.add_argument("root", nargs="?", default=pathlib.Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    found = long_functions(pathlib.Path(args.root), args.limit)
    for n, path, line, signature in sorted(found, reverse=True):
        print(f"{path}:{line}: {n} lines: {signature}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
