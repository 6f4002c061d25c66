#!/usr/bin/env bash
# The man pages the build generated (man/CMakeLists.txt) render without a
# warning and say what their source says.
#   man_pages_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
check() {  # PAGE TEXT...: it renders cleanly and shows every TEXT
  local page=$build/man/$1 shown warnings
  shift
  warnings=$(MANWIDTH=100 man --warnings -l "$page" 2>&1 >/dev/null)
  [ -z "$warnings" ] || { echo "FAIL: $page: $warnings" >&2; exit 1; }
  shown=$(MANWIDTH=100 man -l "$page" 2>/dev/null | col -b)
  for text in "$@"; do
    grep -qF -- "$text" <<<"$shown" || { echo "FAIL: $page does not show '$text'" >&2; exit 1; }
  done
  echo "ok: $(basename "$page")"
}
check jobd.1 "jobd join --cluster-file FILE" "--print-default-config" "--slurm"
check jobctl.1 "jobctl map FUNCTION [OPTIONS]" "--joblog FILE" "--zip FILE" "exit status"
check jobd.yaml.5 "job_history: 100" "credit_window" "jobd.yaml - configuration of jobd"
