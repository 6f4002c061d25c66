#!/usr/bin/env bash
# The Python tests against a jobd and workers built with AddressSanitizer and
# UndefinedBehaviorSanitizer (clang, in the fuzz targets' build tree): clients
# that vanish, cancel or crash mid-job exercise the daemon's paths that free
# jobs and tasks, where a use after free would otherwise corrupt the heap
# silently. A sanitizer report fails the run and is printed.
#   bash tests/sanitized_daemon.sh     (after build.sh has built $BUILD_DIR, default build)
set -euo pipefail
cd "$(dirname "$0")/.."
tree=${BUILD_DIR:-build}  # the normal build: its Python package and jobctl
# (jobd-worker brings the package, whose _worker.py its interpreters run.)
build=$(bash tests/fuzz/sanitized_tree.sh jobd jobd-worker)
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
python=$(sed -n 's/^Python3_EXECUTABLE:[A-Z]*=//p' "$tree/CMakeCache.txt")
status=0
ASAN_OPTIONS="detect_leaks=0:log_path=$reports/asan" UBSAN_OPTIONS="log_path=$reports/ubsan" \
  JOBD_BUILD_DIR="$(realpath "$tree")" JOBD_DAEMON_DIR="$(realpath "$build")" \
  "$python" -m pytest -q -p no:cacheprovider tests/python || status=$?
if compgen -G "$reports/*" >/dev/null; then
  cat "$reports"/* >&2
  echo "sanitized_daemon: the daemon or a worker made the sanitizer reports above" >&2
  exit 1
fi
exit "$status"
