#!/usr/bin/env bash
# How much of two workers' time short items keep busy: items that sleep 1, 5,
# 10 and 20 ms (2 s of sleeping in all, 1 s per worker), mapped by
# `jobctl map sleep` on a pool of 2 workers, against multiprocessing.Pool(2)
# mapping time.sleep over the same items with chunksize=1. Prints each one's
# efficiency: the ideal time (the sleeping, shared by 2 workers) over the time
# taken, best of 3. This is the measurement behind the worker's prefetch (a
# second task sent while the first runs; daemon/supervisor.cc, HasCredit).
#   bash bench/short_tasks.sh [BUILD_DIR]     (default: build)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
python=/usr/bin/python3
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"
trap '"$build/bin/jobctl" shutdown >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
printf 'default_pool: two\npools:\n  two: {workers: 2}\n' > "$work/jobd.yaml"
"$build/bin/jobd" --config "$work/jobd.yaml" --detach >/dev/null

seconds() {  # the wall time of "$@", best of 3
  local best=
  for _ in 1 2 3; do
    local start end
    start=$(date +%s.%N)
    "$@" > /dev/null
    end=$(date +%s.%N)
    best=$($python -c "print(min(x for x in ($end - $start, ${best:-1e9})))")
  done
  echo "$best"
}
jobd_map() { seq 1 "$2" | sed "s/.*/$1/" | "$build/bin/jobctl" map sleep; }
python_map() {
  $python -c "
import multiprocessing, time
with multiprocessing.Pool(2) as pool:
    start = time.perf_counter()
    pool.map(time.sleep, [$1 / 1000] * $2, chunksize=1)
    print(time.perf_counter() - start)"
}
python_seconds() {  # the map alone (not Python's start), best of 3
  local best=1e9
  for _ in 1 2 3; do best=$($python -c "print(min($best, $(python_map "$1" "$2")))"); done
  echo "$best"
}

jobd_map 1 20 >/dev/null  # jobd learns what sleep costs
printf '%-9s %8s %12s %16s\n' "item" "items" "jobd" "multiprocessing"
for ms in 1 5 10 20; do
  items=$((2000 / ms))
  ours=$(seconds jobd_map "$ms" "$items")
  theirs=$(python_seconds "$ms" "$items")
  $python -c "print('%-9s %8d %12.3f %16.3f' % ('$ms ms', $items, 1 / $ours, 1 / $theirs))"
done
