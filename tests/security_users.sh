#!/usr/bin/env bash
# Makes the unprivileged users the security tests run jobd and the attacks as
# (ctest runs this before them). Needs root; without it the tests skip, except
# in CI, where they fail.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "security_users.sh: not root; the security tests will be skipped" >&2
  exit 0
fi
for user in jobd-victim jobd-attacker; do
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
  fi
done
