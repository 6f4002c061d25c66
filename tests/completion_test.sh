#!/usr/bin/env bash
# The bash completion of jobctl and jobd (etc/completion/), against a real
# jobd: commands, options, and the function, pool and job names it knows.
#   completion_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
source_dir=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"
export PATH=$build/bin:$PATH
trap 'jobctl shutdown >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
printf 'pools:\n  cpu: {workers: 1}\n  net: {workers: 1}\n' > "$work/jobd.yaml"
jobd --detach --config "$work/jobd.yaml" --log-file "$work/jobd.log" >/dev/null
jobctl map len abc >/dev/null  # job 1, for `jobctl job`
source "$source_dir/etc/completion/jobctl"
source "$source_dir/etc/completion/jobd"

# completes "WORD WORD... CURRENT": the words, the last one being completed.
completes() {
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  "_${COMP_WORDS[0]}"
  echo "${COMPREPLY[*]}"
}
expect() {  # WANTED... -- WORDS...: every WANTED is among the completions
  local wanted=() got
  while [ "$1" != "--" ]; do wanted+=("$1"); shift; done
  shift
  got=" $(completes "$@") "
  for word in "${wanted[@]}"; do
    [[ $got == *" $word "* ]] || { echo "FAIL: '$*' completes to '$got', not '$word'" >&2; exit 1; }
  done
}
expect map metrics -- jobctl m
expect sha256 sleep -- jobctl map s
expect cpu net -- jobctl map --pool ""
expect --joblog --json -- jobctl map --j
expect --json -- jobctl status --j
expect 1 -- jobctl job ""
expect map starmap -- jobctl help ""
expect --config --cluster-file -- jobd --c
expect join -- jobd j
# With the function given, the next words are items: files, not functions.
got=$(cd "$work" && completes jobctl map len j)
[[ " $got " == *" jobd.yaml "* ]] || { echo "FAIL: items complete to '$got'" >&2; exit 1; }
echo "ok: jobctl and jobd complete commands, options, pools, functions and jobs"
