#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD/fuzz for SECONDS each, starting from the seed corpus in
# fuzz/corpus/TARGET (read only; what the fuzzer finds goes to BUILD/fuzz-corpus/TARGET).
# A crash, leak, sanitizer report, timeout or out-of-memory stops the run with the target's
# output and the reproducer's path. Usage: scripts/fuzz.sh BUILD SECONDS
set -euo pipefail
build=${1:?usage: scripts/fuzz.sh BUILD SECONDS}
seconds=${2:?usage: scripts/fuzz.sh BUILD SECONDS}
root=$(cd "$(dirname "$0")/.." && pwd)
summary=()
for seeds in "$root"/fuzz/corpus/*/; do
  target=$(basename "$seeds")
  bin="$build/fuzz/$target"
  [ -x "$bin" ] || { echo "fuzz.sh: $bin is not built" >&2; exit 1; }
  work="$build/fuzz-corpus/$target" artifacts="$build/fuzz-artifacts/$target/"
  mkdir -p "$work" "$artifacts"
  log="$build/fuzz-$target.log"
  echo "== $target: ${seconds}s"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$artifacts" "$work" "$seeds" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz.sh: $target FAILED; reproducer in $artifacts, full log in $log" >&2
    exit 1
  fi
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -o 'cov: [0-9]*' || true)
  summary+=("$(printf '%-20s %10s runs in %ss  %s  corpus %s files' "$target" "$execs" "$seconds" "$cov" "$(ls "$work" | wc -l)")")
done
printf '%s\n' "${summary[@]}"
