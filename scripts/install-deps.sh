#!/usr/bin/env bash
# Installs, from Debian 12 packages, only what attend needs and the machine lacks.
# Usage: scripts/install-deps.sh [build|test|fuzz|bible]
#   build: compiler, CMake, the libraries the library and CLI link against (oneDNN for int8 inference, Boost for
#          attend serve, OpenMPI for training on several processes), Python headers, NumPy and pybind11
#          for the Python module, npm for `attend data cmudict` (what `make demo` needs); oneDNN's CMake
#          package asks for OpenCL (ocl-icd-opencl-dev, only recommended by libdnnl-dev)
#   test:  build + GoogleTest, Google Benchmark, PyTorch, pytest, NLTK, Chromium (the report page's browser test),
#          wrk (bench/serve.py's load) and the bible modules (what `make test` and `make bench` need)
#   fuzz:  build + clang and its runtime with libFuzzer (what `make fuzz` needs)
#   bible: diatheke and the SWORD modules of `attend data bible` (RV 1909, WEB, KJV)
# Idempotent: a second run installs nothing. Needs root (or sudo) only when something is missing.
set -euo pipefail

profile=${1:-build}
build_pkgs=(g++ make cmake pkg-config libboost-dev libopenmpi-dev openmpi-bin libopenblas-dev libdnnl-dev ocl-icd-opencl-dev libhwy-dev libsentencepiece-dev libcli11-dev nlohmann-json3-dev libpng-dev
            libfreetype-dev libssl-dev fonts-dejavu-core python3 python3-dev python3-numpy pybind11-dev npm)
test_pkgs=(libgtest-dev libbenchmark-dev wrk python3-torch python3-pytest python3-nltk chromium)
fuzz_pkgs=(clang libclang-rt-14-dev)
bible_pkgs=(diatheke sword-text-sparv sword-text-web sword-text-kjv)

case "$profile" in
  build) wanted=("${build_pkgs[@]}") ;;
  test)  wanted=("${build_pkgs[@]}" "${test_pkgs[@]}" "${bible_pkgs[@]}") ;;
  fuzz)  wanted=("${build_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
  bible) wanted=("${bible_pkgs[@]}") ;;
  *) echo "install-deps.sh: unknown profile '$profile' (expected build, test, fuzz or bible)" >&2; exit 2 ;;
esac

# A command already on PATH stands for its package: e.g. a Node.js that bundles npm, which
# Debian's npm package would conflict with.
declare -A provides_command=([npm]=npm)

missing=()
for p in "${wanted[@]}"; do
  if [ -n "${provides_command[$p]:-}" ] && command -v "${provides_command[$p]}" >/dev/null 2>&1; then
    continue
  fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#wanted[@]} packages for '$profile' are present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
