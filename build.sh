#!/usr/bin/env bash
# Sets up a Debian 12 machine for jobd (installing missing packages when run
# as root), builds it, then runs one of:
#   bash build.sh demo    start jobd on its embedded default config, map a
#                         CPU-heavy job on every core, compare with one worker
#   bash build.sh test    run every test (unit and integration under ctest, then
#                         the fuzz targets for a bounded time, then the Python
#                         tests against a sanitized jobd)
#   bash build.sh build   only build
#   bash build.sh package build the Debian package: build/jobd_VERSION_ARCH.deb
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(g++ cmake ninja-build pkg-config libzmq3-dev cppzmq-dev libprotobuf-dev
          protobuf-compiler libboost-dev libyaml-cpp-dev libgtest-dev libssl-dev python3
          python3-dev pybind11-dev python3-cloudpickle python3-tqdm python3-pytest python3-numpy
          python3-venv python3-pip parallel slurm-wlm munge libsystemd-dev systemd prometheus help2man libspdlog-dev libcli11-dev lintian
          clang libclang-rt-14-dev)
BUILD_DIR=${BUILD_DIR:-build}

install_packages() {
  local missing=()
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: missing Debian packages: ${missing[*]}" >&2
    echo "build.sh: run this script as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "build.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

build() {
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD_DIR"
}

run_tests() {
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 300
  bash tests/fuzz/run.sh "${FUZZ_SECONDS:-10}"
  bash tests/sanitized_daemon.sh
}

demo() {
  bin="$BUILD_DIR/bin"
  # A private runtime directory, so the demo never meets another jobd.
  export XDG_RUNTIME_DIR
  XDG_RUNTIME_DIR=$(mktemp -d)
  trap '"$bin/jobctl" shutdown >/dev/null 2>&1 || true; rm -rf "$XDG_RUNTIME_DIR"' EXIT
  "$bin/jobd" --detach --log-file "$XDG_RUNTIME_DIR/jobd.log"

  seq 1 64 | awk '{ print 10000000 + $1 * 10000 }' > "$XDG_RUNTIME_DIR/items"
  local cores
  cores=$(nproc)
  echo "Counting the primes <= N for 64 values of N from 10,010,000 to 10,640,000"
  local start end all one
  start=$(date +%s.%N)
  "$bin/jobctl" map primes < "$XDG_RUNTIME_DIR/items" > "$XDG_RUNTIME_DIR/all"
  end=$(date +%s.%N)
  all=$(python3 -c "print($end - $start)")
  paste "$XDG_RUNTIME_DIR/items" "$XDG_RUNTIME_DIR/all" |
    awk '{ printf "  primes(%s) = %-8s%s", $1, $2, (NR % 4 ? "" : "\n") }' 
  start=$(date +%s.%N)
  "$bin/jobctl" map primes --workers 1 < "$XDG_RUNTIME_DIR/items" > "$XDG_RUNTIME_DIR/one"
  end=$(date +%s.%N)
  one=$(python3 -c "print($end - $start)")
  cmp -s "$XDG_RUNTIME_DIR/all" "$XDG_RUNTIME_DIR/one" || { echo "results differ between runs" >&2; exit 1; }
  python3 -c "
all, one = float('$all'), float('$one')
print(f'wall time on all $cores workers of pool cpu: {all:.2f} s')
print(f'wall time on 1 worker (--workers 1):       {one:.2f} s')
print(f'speed-up: {one / all:.2f}x')"
}

# The Debian package, built in its own folder (installed under /usr) and
# copied into the build folder: $BUILD_DIR/jobd_VERSION_ARCH.deb.
package() {
  local dir=$BUILD_DIR/package
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
    -DJOBD_PACKAGE=ON -DBUILD_TESTING=OFF >/dev/null
  cmake --build "$dir"
  (cd "$dir" && cpack >/dev/null)
  cp "$dir"/jobd_*.deb "$BUILD_DIR/"
  ls "$BUILD_DIR"/jobd_*.deb
}

case "${1:-}" in
  demo) install_packages; build; demo ;;
  test) install_packages; build; package; run_tests ;;
  build) install_packages; build ;;
  package) install_packages; package ;;
  *) echo "usage: bash build.sh demo|test|build|package" >&2; exit 2 ;;
esac
