#!/usr/bin/env bash
# Configures the clang tree where everything is built with ASan and UBSan (and
# libFuzzer's coverage), ${FUZZ_BUILD_DIR:-build-fuzz}, builds TARGETS there,
# and prints the tree's path. Used by tests/fuzz/run.sh and tests/sanitized_daemon.sh.
#   bash tests/fuzz/sanitized_tree.sh TARGET...
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${FUZZ_BUILD_DIR:-build-fuzz}
cmake -S . -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DJOBD_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" --target "$@" >&2
echo "$build"
