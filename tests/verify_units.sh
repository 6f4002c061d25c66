#!/usr/bin/env bash
# systemd-analyze verify on the shipped units (etc/*.service), with their
# programs pointed at this build: any complaint fails the test.
#   verify_units.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
source_dir=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in "$source_dir"/etc/*.service; do
  # Verified under the name it is installed as.
  sed "s#/usr/local/bin/#$build/bin/#g" "$unit" > "$work/jobd.service"
  if ! out=$(systemd-analyze verify "$work/jobd.service" 2>&1) || [ -n "$out" ]; then
    echo "FAIL: $(basename "$unit"): $out" >&2
    exit 1
  fi
  echo "ok: $(basename "$unit")"
done
