#!/bin/sh
# The measurements of the /build view (issue 15) in one run, side by
# side: real failing builds (nix-build --keep-failed) keep a big
# directory (testdata/bench: NBS_BENCH_FILES files, default 50 000, of
# NBS_BENCH_BYTES bytes in all, default 1 GiB) and a tiny one
# (testdata/e2e's fail), both owned by a Nix build user. Then, as root
# and as the unprivileged NBS_BENCH_USER (default nbs-test):
#
#   - entry.sh on the big one: entry against cp -a, disk, five walks
#     against the host's, peak RSS of nbs and of the FUSE server, for
#     each entry mode the user has (root: the kernel overlay over an
#     idmapped layer; the user: fuse-overlayfs over the build user's
#     directory, the kernel overlay over one of their own; both: --copy);
#   - start.sh on the tiny one: nbs shell DIR true against bwrap doing
#     the same work, and nbs's peak RSS.
#
# Everything it made (the kept directories, the binary) is removed at
# the end. Nothing is asserted; the numbers are printed, with the load.
#
#   sudo testdata/bench/view.sh
#   NBS_BENCH_FILES=5000 NBS_BENCH_BYTES=134217728 NBS_BENCH_RUNS=30 sudo -E testdata/bench/view.sh
#
# Needs root, Nix with build users, busybox-static and bash-static,
# fuse-overlayfs, hyperfine, bwrap, GNU time, Go (.ci/setup-host).
set -eu
cd "$(dirname "$0")/../.."

[ "$(id -u)" = 0 ] || { echo "view.sh: run it as root (sudo): it measures root's entry and, through runuser, an unprivileged user's" >&2; exit 1; }
user=${NBS_BENCH_USER:-nbs-test}
home=$(getent passwd "$user" | cut -d: -f6)
[ -n "$home" ] || { echo "view.sh: no user $user (NBS_BENCH_USER names the unprivileged one)" >&2; exit 1; }
files=${NBS_BENCH_FILES:-50000}
bytes=${NBS_BENCH_BYTES:-1073741824}

top=$(mktemp -d /tmp/nbs-bench-view.XXXXXX)
chmod 755 "$top"
big= tiny=
cleanup() {
	rm -rf "$top"
	for d in "$big" "$tiny"; do [ -z "$d" ] || rm -rf "$d"; done
}
trap cleanup EXIT
trap 'exit 1' INT TERM
nbs=$top/nbs
CGO_ENABLED=0 go build -o "$nbs" ./cmd/nbs
chmod 755 "$nbs"

# kept ARGS...: the directory a failing nix-build ARGS... kept.
kept() {
	if log=$(nix-build --no-out-link --keep-failed "$@" 2>&1); then
		echo "view.sh: nix-build $* did not fail" >&2
		return 1
	fi
	d=$(echo "$log" | sed -n "s/.*keeping build directory '\([^']*\)'.*/\1/p")
	[ -n "$d" ] || { echo "view.sh: nix-build $* kept no directory:" >&2; echo "$log" >&2; return 1; }
	echo "$d"
}
nonce=view-$$-$(date +%s)
big=$(kept testdata/bench --arg files "$files" --arg bytes "$bytes" --argstr nonce "$nonce")
tiny=$(kept testdata/e2e -A fail --argstr nonce "$nonce")

as_user() {
	runuser -u "$user" -- env HOME="$home" PATH="$PATH" TMPDIR=/tmp "$@"
}

echo "== $(date -u +%FT%TZ), $(uname -r), fuse-overlayfs $(fuse-overlayfs --version 2>&1 | sed -n 's/.*version //p' | head -n 1), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== root: the big directory"
NBS_BENCH_NBS=$nbs testdata/bench/entry.sh "$big"
echo "== $user: the big directory"
as_user NBS_BENCH_NBS="$nbs" testdata/bench/entry.sh "$big"
echo "== root: start on the tiny directory"
NBS=$nbs testdata/bench/start.sh "$tiny"
echo "== $user: start on the tiny directory"
as_user NBS="$nbs" testdata/bench/start.sh "$tiny"
echo "== done, load $(cut -d' ' -f1-3 /proc/loadavg)"
