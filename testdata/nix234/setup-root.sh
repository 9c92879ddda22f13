#!/bin/bash
# Run once by run.sh, chrooted into a freshly debootstrapped sid root: does
# there what .ci/setup-host does on the machine (Nix's sandbox on, no
# binary cache, build users, the unprivileged test user). Nothing is
# started here; inside.sh starts the nix-daemon on every run.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

mkdir -p /etc/nix
# Keep whatever Debian's nix.conf sets (sandbox-paths, …); ours comes last
# and wins.
cat >> /etc/nix/nix.conf <<'CONF'

# added by nbs's testdata/nix234/setup-root.sh
sandbox = true
sandbox-fallback = false
build-users-group = nixbld
substituters =
CONF

# Build users, as Debian's 2.8 package makes them, unless the package made
# its own: group nixbld listing nixbld1…10 as members (the tests find the
# build users through the group's member list).
getent group nixbld >/dev/null || groupadd --system nixbld
members=$(getent group nixbld | cut -d: -f4)
if [ -z "$members" ]; then
  for i in $(seq 1 10); do
    id "nixbld$i" >/dev/null 2>&1 ||
      useradd --system --no-create-home --home-dir /var/empty --shell /usr/sbin/nologin \
        --gid nixbld --comment "Nix build user $i" "nixbld$i"
    usermod -a -G nixbld "nixbld$i"
  done
fi

id nbs-test >/dev/null 2>&1 || useradd --create-home --shell /bin/bash nbs-test
# Debian lets only the nix-users group talk to the daemon.
if getent group nix-users >/dev/null; then usermod -a -G nix-users nbs-test; fi
