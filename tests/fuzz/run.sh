#!/usr/bin/env bash
# Builds the fuzz targets with clang (ASan + UBSan + libFuzzer) and runs each
# for a bounded time over its corpus in tests/fuzz/corpus/. A finding (crash,
# sanitizer report, failed check) fails the run and leaves the input in
# build-fuzz/findings/.
#   bash tests/fuzz/run.sh [SECONDS_PER_TARGET]    (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
build=$(bash tests/fuzz/sanitized_tree.sh client_messages_fuzzer worker_messages_fuzzer \
  shared_memory_fuzzer)
mkdir -p "$build/findings"
for target in client_messages worker_messages shared_memory; do
  new=$(mktemp -d)  # new inputs go here, not into the tree
  echo "fuzzing $target for ${seconds}s"
  "$build/bin/${target}_fuzzer" -max_total_time="$seconds" -print_final_stats=0 \
    -artifact_prefix="$build/findings/${target}-" "$new" "tests/fuzz/corpus/$target" \
    2> "$build/findings/$target.log" || {
      tail -40 "$build/findings/$target.log"
      echo "fuzz: $target found a problem; the input is in $build/findings/" >&2
      exit 1
    }
  grep -E "^#[0-9]+.*DONE" "$build/findings/$target.log" | tail -1 || true
  rm -rf "$new"
done
