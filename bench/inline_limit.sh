#!/usr/bin/env bash
# How the inline limit (items and results above it go through shared memory)
# affects throughput: builds jobd with several limits from the committed tree,
# then maps `identity` over 40 MB of items of several sizes on 2 workers with
# each build, best of 3. This is the measurement behind kInlineLimit
# (common/payload.h). Takes a few minutes.
#   bash bench/inline_limit.sh [LIMIT_KIB...]     (default: 4 16 64)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'for d in "$work"/rt*; do XDG_RUNTIME_DIR=$d "$work"/b*/bin/jobctl shutdown >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT
limits=("${@:-4 16 64}")
read -r -a limits <<< "${limits[*]}"
sizes=(2000 6000 12000 24000 48000)

for limit in "${limits[@]}"; do
  git clone -q "$repo" "$work/src$limit"
  sed -i "s/kInlineLimit = [0-9]* \* 1024/kInlineLimit = $limit * 1024/" "$work/src$limit/common/payload.h"
  cmake -S "$work/src$limit" -B "$work/b$limit" -G Ninja -DBUILD_TESTING=OFF >/dev/null
  ninja -C "$work/b$limit" jobd jobd-worker jobctl >/dev/null
done
for size in "${sizes[@]}"; do
  python3 -c "import sys; sys.stdout.write(('y' * $size + '\n') * (40000000 // $size))" > "$work/items$size"
done
printf 'default_pool: two\npools:\n  two: {workers: 2}\n' > "$work/jobd.yaml"

printf '%-11s' "item bytes"
for limit in "${limits[@]}"; do printf '%16s' "limit ${limit} KiB"; done
echo
for size in "${sizes[@]}"; do
  printf '%-11s' "$size"
  for limit in "${limits[@]}"; do
    export XDG_RUNTIME_DIR="$work/rt$limit"
    mkdir -p "$XDG_RUNTIME_DIR"
    "$work/b$limit/bin/jobd" --config "$work/jobd.yaml" --detach >/dev/null
    best=
    for _ in 1 2 3; do
      start=$(date +%s.%N)
      "$work/b$limit/bin/jobctl" map identity < "$work/items$size" > /dev/null
      end=$(date +%s.%N)
      best=$(python3 -c "print(min(${best:-1e9}, $end - $start))")
    done
    "$work/b$limit/bin/jobctl" shutdown >/dev/null
    sleep 0.3
    printf '%16s' "$(python3 -c "print(f'{40000000 // $size / $best / 1000:.1f}k items/s')")"
  done
  echo
done
