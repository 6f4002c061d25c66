# Sourced by the Slurm tests (tests/cluster/slurm_*_test.sh BUILD_DIR): skips
# without root (exit 77; a failure in CI, where $CI is set), then makes a
# private directory $work (with $XDG_RUNTIME_DIR in it) and starts the 2-node
# cluster (slurm_cluster.sh) there. A test's `cleanup` runs first at exit;
# `fail MESSAGE` prints the logs named in $logs and exits 1.
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
if [ "$(id -u)" -ne 0 ]; then
  echo "$(basename "$0"): needs root to run slurmd" >&2
  [ -n "${CI:-}" ] && exit 1
  exit 77
fi
work=$(mktemp -d /tmp/jobd-slurm-test.XXXXXX)
chmod 0700 "$work"
export XDG_RUNTIME_DIR=$work/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"
logs=()
cleanup() { :; }
finish() {
  cleanup || true
  bash "$here/slurm_cluster.sh" down "$work/slurm" || true
  rm -rf "$work"
}
trap finish EXIT
trap 'echo "FAILED: line $LINENO of $(basename "$0"): $BASH_COMMAND" >&2' ERR
fail() {
  echo "FAILED: $*" >&2
  for log in "${logs[@]}"; do echo "--- $log:" >&2; cat "$log" >&2 || true; done
  exit 1
}
eval "$(bash "$here/slurm_cluster.sh" up "$work/slurm")"
