#!/bin/bash
# Third stage of run.sh: PID 1 in the sid root (after pivot_root). Starts
# a nix-daemon for the unprivileged test user, checks that Nix's sandbox
# really works here, and runs go test with sid's Nix on PATH. When this
# script ends, the kernel ends every process of the PID namespace (the
# daemon too) and the mount namespace goes with them.
set -euo pipefail
cd "$NBS_REPO"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$NBS_GOROOT/bin
export GOROOT=$NBS_GOROOT GOCACHE=$NBS_GOCACHE GOMODCACHE=$NBS_GOMODCACHE
export GOPATH=$(dirname "$NBS_GOMODCACHE") GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
export GOPROXY=off TMPDIR=/tmp
[ -n "$NBS_E2E_REQUIRED" ] || unset NBS_E2E_REQUIRED

echo "nix234: $(nix-build --version), $(go version), kernel $(uname -r)" >&2

# Build users, and sshd's privilege-separation user, with uids no host
# account has. Nix ends every build by killing all processes of its build
# user's uid (killUser in src/libstore/unix/build/derivation-builder.cc,
# local-derivation-goal.cc before 2.25), and Debian gives the sid root's
# system users the same uids as the host's build users (sid's sshd was the
# host's nixbld2): a build on the host would kill this side's sandboxes,
# test canaries and ssh sessions, and the other way round. Idempotent
# (the root is reused).
for u in $(getent group nixbld | cut -d: -f4 | tr , ' '); do
  n=${u#nixbld}
  case $n in *[!0-9]*|'') continue ;; esac
  [ "$(id -u "$u")" -ge 30000 ] || usermod -u $((30000 + n)) "$u"
done
if id sshd >/dev/null 2>&1 && [ "$(id -u sshd)" -lt 30000 ]; then usermod -u 30100 sshd; fi

mkdir -p /nix/var/nix/daemon-socket
setsid nix-daemon </dev/null >/var/log/nix-daemon.log 2>&1 &
for _ in $(seq 100); do
  [ -S /nix/var/nix/daemon-socket/socket ] && break
  sleep 0.1
done
[ -S /nix/var/nix/daemon-socket/socket ] || { cat /var/log/nix-daemon.log >&2; echo "nix234: the nix-daemon did not start" >&2; exit 1; }

# The sandbox must be real, not the silent fallback: a builder that sees
# itself as PID 1 in a root holding no /usr.
cat > /tmp/sandbox-check.nix <<'NIX'
derivation {
  name = "nbs-nix234-sandbox-check";
  system = builtins.currentSystem;
  builder = builtins.path { path = /bin/bash-static; name = "bash"; };
  nonce = builtins.toString builtins.currentTime;
  args = [ "-c" "read -r pid _ < /proc/self/stat; echo pid=$pid; [ $pid = 1 ] && ! [ -e /usr ] && echo > $out" ];
}
NIX
if ! out=$(nix-build --no-out-link --option sandbox-fallback false /tmp/sandbox-check.nix 2>&1); then
  echo "$out" >&2
  echo "nix234: Nix's sandbox does not work in the sid root" >&2
  exit 1
fi
nix-store --delete $(echo "$out" | grep '^/nix/store/') >/dev/null 2>&1 || true
echo "nix234: Nix's sandbox works; settings: $(nix --extra-experimental-features nix-command config show | grep -E '^(sandbox|sandbox-paths|sandbox-build-dir|build-users-group|filter-syscalls) =' | tr '\n' ';')" >&2

if [ $# -eq 0 ]; then set -- -count=1 -timeout 30m ./...; fi
echo "nix234: go test $*" >&2
go test "$@"
