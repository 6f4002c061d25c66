#!/usr/bin/env bash
# The Debian package (bash build.sh package): lintian finds no error in it;
# apt-get installs it with its dependencies; the installed jobd, jobctl,
# Python package, man pages and conffile work; remove and purge leave
# nothing. Needs root (it installs into the system); skipped (77) otherwise.
#   package_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "package test: needs root (it installs the package)"; exit 77; }
deb=$(ls "$build"/jobd_*.deb 2>/dev/null | head -1 || true)  # none: ls fails
if [ -z "$deb" ]; then  # not built yet: build it as a packager would
  BUILD_DIR=$build bash "$(dirname "$0")/../build.sh" package >/dev/null
  deb=$(ls "$build"/jobd_*.deb | head -1)
fi
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"
cleanup() {
  /usr/bin/jobctl shutdown >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq jobd >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

lintian --fail-on error "$deb" > "$work/lintian" 2>&1 || fail "lintian: $(cat "$work/lintian")"
# The one warning kept: jobd-worker has no man page (only jobd starts it).
if grep -v -e "no-manual-page \[usr/bin/jobd-worker\]" -e "running with root" "$work/lintian" |
   grep -q .; then
  fail "lintian warns: $(cat "$work/lintian")"
fi

DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" > "$work/apt" 2>&1 ||
  fail "apt-get install: $(tail -20 "$work/apt")"
# (Checked before any Python runs here, which might write them itself.)
python_dir=/usr/lib/python3/dist-packages/jobd
ls "$python_dir"/__pycache__/_job.cpython-*.pyc >/dev/null 2>&1 ||
  fail "the Python package is not byte-compiled (postinst): every import would compile it"
/usr/bin/jobd --check-config --config /etc/jobd/jobd.yaml >/dev/null || fail "the conffile"
/usr/bin/jobd --detach --log-file "$work/jobd.log" >/dev/null || fail "jobd did not start"
[ "$(/usr/bin/jobctl map len abc)" = 3 ] || fail "jobctl map"
[ "$(cd / && /usr/bin/python3 -c 'import jobd; print(jobd.Pool().map(len, ["ab"]))')" = "[2]" ] ||
  fail "the Python package"
/usr/bin/jobctl shutdown >/dev/null
for page in jobd jobctl jobd.yaml; do man -w "$page" >/dev/null || fail "no man page $page"; done
[ -f /usr/share/bash-completion/completions/jobctl ] || fail "no completion"
systemd-analyze verify /usr/lib/systemd/system/jobd.service ||
  fail "the system unit: $(systemd-analyze verify /usr/lib/systemd/system/jobd.service 2>&1)"

DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq jobd >/dev/null
[ ! -e /usr/bin/jobd ] || fail "remove left /usr/bin/jobd"
[ -f /etc/jobd/jobd.yaml ] || fail "remove took the conffile (only purge should)"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq jobd >/dev/null
[ ! -e /etc/jobd ] || fail "purge left /etc/jobd"
[ ! -e "$python_dir" ] || fail "purge left $python_dir: $(find "$python_dir")"
left=$(dpkg -L jobd 2>/dev/null || true)
[ -z "$left" ] || fail "dpkg still lists files of jobd: $left"
echo "ok: lintian clean but for one justified warning; installed, ran, removed and purged"
