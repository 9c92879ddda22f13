#!/usr/bin/env bash
# Runs nbs's Go tests (by default all of them: the differential test and
# every end-to-end test included) against Debian sid's Nix (nix-bin 2.34)
# instead of the machine's own. README.md beside this file explains it.
#
#   sudo testdata/nix234/run.sh                      # go test -count=1 -timeout 30m ./...
#   sudo testdata/nix234/run.sh -run TestDifferential ./cmd/nbs/
#
# Arguments, when given, replace `-count=1 -timeout 30m ./...` and go to `go test` as
# they are. Environment:
#   NBS_NIX234_CACHE   where the sid root is kept between runs
#                      (default /var/tmp/nbs-nix234; never inside the repo)
#   NBS_NIX234_FRESH=1 debootstrap a new sid root even if one is there
#   NBS_NIX234_MIRROR  the Debian mirror (default http://deb.debian.org/debian)
#   NBS_E2E_REQUIRED   passed on (CI sets it: missing prerequisites fail)
#
# Steps: debootstrap a minimal sid root once (and reuse it), then enter it
# as the real root of a new mount and PID namespace (pivot_root, not
# chroot: in a chroot the kernel refuses the user namespace Nix's sandbox
# needs, and Nix quietly builds without a sandbox), with the repository,
# the Go toolchain and the Go caches bound in at the paths they have here.
# inside.sh, run there as PID 1, starts a nix-daemon and runs go test.
# Everything the run mounts or starts lives in those namespaces and ends
# with them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ "${1:-}" = --enter ]; then
  # Second stage, under unshare: a private mount namespace in which we
  # are PID 1 of a new PID namespace. Make the sid root the real root.
  shift
  root=$NBS_NIX234_ROOT
  mount --bind "$root" "$root"
  mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
  mount -t sysfs -o nosuid,nodev,noexec sysfs "$root/sys"
  mount --rbind /dev "$root/dev"
  bindin() { # bindin PATH [ro]: PATH of this machine at the same PATH inside
    mkdir -p "$root$1"
    mount --bind "$1" "$root$1"
    if [ "${2:-}" = ro ]; then mount -o remount,bind,ro "$root$1"; fi
  }
  bindin "$repo"
  bindin "$NBS_GOROOT" ro
  bindin "$NBS_GOCACHE"
  bindin "$NBS_GOMODCACHE"
  mkdir -p "$root/.oldroot"
  cd "$root"
  pivot_root . .oldroot
  cd /
  umount -l /.oldroot
  rmdir /.oldroot
  exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM="${TERM:-dumb}" \
    NBS_REPO="$repo" NBS_GOROOT="$NBS_GOROOT" NBS_GOCACHE="$NBS_GOCACHE" \
    NBS_GOMODCACHE="$NBS_GOMODCACHE" NBS_E2E_REQUIRED="${NBS_E2E_REQUIRED:-}" \
    /bin/bash "$repo/testdata/nix234/inside.sh" "$@"
fi

if [ "$(id -u)" != 0 ]; then
  echo "nix234: run as root (sudo $0)" >&2
  exit 1
fi
start=$(date +%s)
say() { echo "nix234 [$(($(date +%s) - start))s]: $*" >&2; }

cache=${NBS_NIX234_CACHE:-/var/tmp/nbs-nix234}
case "$(realpath -m "$cache")/" in
  "$repo"/*) echo "nix234: NBS_NIX234_CACHE ($cache) must not be inside the repository" >&2; exit 1 ;;
esac
root=$cache/root
mirror=${NBS_NIX234_MIRROR:-http://deb.debian.org/debian}
# What the tests need in the sid root, as .ci/setup-host installs it on
# the machine: Nix; static bash and busybox (the offline test builders);
# util-linux (setpriv, unshare); procps; ssh; fuse-overlayfs (the
# unprivileged copy-on-write /build). Nothing inside uses the network.
pkgs=nix-bin,bash-static,busybox-static,util-linux,procps,openssh-server,openssh-client,fuse-overlayfs,fuse3
# The stamp says which recipe made the root: a changed recipe makes a new one.
stamp="pkgs=$pkgs setup=$(sha256sum "$here/setup-root.sh" | cut -c1-16)"

# Go: the toolchain and caches of this machine, bound in at the same paths.
export PATH=$PATH:/usr/local/go/bin
if ! command -v go >/dev/null; then
  echo "nix234: no go on PATH (run .ci/setup-host)" >&2
  exit 1
fi
NBS_GOROOT=$(go env GOROOT)
NBS_GOCACHE=$(go env GOCACHE)
NBS_GOMODCACHE=$(go env GOMODCACHE)
mkdir -p "$NBS_GOCACHE" "$NBS_GOMODCACHE"
# Fetch the modules here, where the network is set up; inside they come
# from the bound cache.
(cd "$repo" && go mod download)

if [ "${NBS_NIX234_FRESH:-}" = 1 ] || [ "$(cat "$root/.nbs-nix234-stamp" 2>/dev/null)" != "$stamp" ]; then
  command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  say "debootstrap sid into $root (minbase + $pkgs)"
  rm -rf "$root" "$root.new"
  mkdir -p "$cache"
  # debootstrap's own resolver cannot install nix-bin (it does not follow
  # virtual packages such as perl-dbdabi-94): bootstrap the base system,
  # then let sid's apt install the rest. A mirror may serve an older
  # snapshot whose Release has expired: accept it (debootstrap does).
  if ! debootstrap --variant=minbase sid "$root.new" "$mirror" > "$cache/debootstrap.log" 2>&1; then
    tail -n 30 "$cache/debootstrap.log" >&2
    echo "nix234: debootstrap failed; the whole log is $cache/debootstrap.log" >&2
    exit 1
  fi
  say "apt-get install ${pkgs//,/ }"
  printf '#!/bin/sh\nexit 101\n' > "$root.new/usr/sbin/policy-rc.d" # start no service
  chmod 0755 "$root.new/usr/sbin/policy-rc.d"
  if ! chroot "$root.new" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
      sh -c "apt-get update -q -o Acquire::Check-Valid-Until=false && apt-get install -y -q --no-install-recommends ${pkgs//,/ }" >> "$cache/debootstrap.log" 2>&1; then
    tail -n 30 "$cache/debootstrap.log" >&2
    echo "nix234: apt-get install in the sid root failed; the whole log is $cache/debootstrap.log" >&2
    exit 1
  fi
  rm -f "$root.new/usr/sbin/policy-rc.d"
  chroot "$root.new" apt-get clean
  say "configuring the sid root"
  cp "$here/setup-root.sh" "$root.new/tmp/setup-root.sh"
  chroot "$root.new" /bin/bash /tmp/setup-root.sh
  rm -f "$root.new/tmp/setup-root.sh"
  echo "$stamp" > "$root.new/.nbs-nix234-stamp"
  mv "$root.new" "$root"
else
  say "reusing the sid root in $root"
fi
# Left over from an earlier run: test files, kept build directories.
find "$root/tmp" "$root/var/tmp" -mindepth 1 -delete 2>/dev/null || true
rm -rf "$root"/nix/var/nix/builds/* "$root/nix/var/nix/daemon-socket/socket"

say "entering the sid root (nix-bin $(chroot "$root" dpkg-query -W -f '${Version}' nix-bin))"
set +e
NBS_NIX234_ROOT=$root NBS_GOROOT=$NBS_GOROOT NBS_GOCACHE=$NBS_GOCACHE NBS_GOMODCACHE=$NBS_GOMODCACHE \
  unshare --mount --pid --fork --propagation private -- "$here/run.sh" --enter "$@"
rc=$?
set -e
say "done, status $rc"
exit $rc
