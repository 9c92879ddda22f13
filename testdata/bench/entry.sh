#!/bin/sh
# Entry into a kept directory: `nbs shell DIR true` with the copy-on-write
# view (the default where the machine allows it) and with --copy, against
# `cp -a` of the same directory; the disk a session uses after appending a
# line to one file; five walks of /build (busybox find) inside nbs against
# the same walk on the host. Ratios come from one run on one machine; the
# numbers are printed, nothing is asserted.
#
# The kept directory (~1 GiB in 50 000 files unless NBS_BENCH_FILES and
# NBS_BENCH_BYTES say otherwise) is generated under $TMPDIR with an
# the env-vars of the failed offline demo (testdata/demo, built here), and
# removed at the end.
# Run it as yourself (the directory is yours: an unprivileged overlay) and
# with sudo (an overlay over an idmapped layer). Needs Nix, busybox-static
# (.ci/setup-host installs them) and Go.
#
# NBS_ENTRY_MODE picks the view (fuse: fuse-overlayfs even over your own
# directory); NBS_BENCH_NBS names an nbs binary to use instead of one
# built from this tree.
#
#   testdata/bench/entry.sh
#   NBS_ENTRY_MODE=fuse testdata/bench/entry.sh
#   NBS_BENCH_FILES=5000 NBS_BENCH_BYTES=134217728 sudo -E testdata/bench/entry.sh
set -eu
cd "$(dirname "$0")/../.."

files=${NBS_BENCH_FILES:-50000}
bytes=${NBS_BENCH_BYTES:-1073741824}
[ -x /bin/busybox ] || { echo "entry.sh: /bin/busybox is missing (Debian's busybox-static)" >&2; exit 1; }
top=$(mktemp -d "${TMPDIR:-/tmp}/nbs-bench.XXXXXX")
trap 'rm -rf "$top"' EXIT INT TERM
chmod 755 "$top"
nbs=${NBS_BENCH_NBS:-}
if [ -z "$nbs" ]; then
	nbs=$top/nbs
	go build -o "$nbs" ./cmd/nbs
fi
kept=$top/kept
work=$top/tmp
mkdir -p "$kept" "$work"
chmod 1777 "$work"

# The kept directory: 100 directories of equal files, and a busybox to
# walk /build with from inside.
dirs=100
per=$(( (files + dirs - 1) / dirs ))
size=$(( bytes / (per * dirs) ))
head -c "$size" /dev/urandom >"$top/blob"
i=0
while [ $i -lt $dirs ]; do
	d=$kept/d$i
	mkdir "$d"
	j=0
	while [ $j -lt $per ]; do
		cp "$top/blob" "$d/f$j"
		j=$((j + 1))
	done
	i=$((i + 1))
done
# The environment of a real failed build: the offline demo's.
demo=$(nix-build --no-out-link --keep-failed testdata/demo 2>&1 |
	sed -n "s/.*keeping build directory '\([^']*\)'.*/\1/p" | head -n 1)
[ -n "$demo" ] || { echo "entry.sh: the demo build kept no directory (is Nix set up? .ci/setup-host)" >&2; exit 1; }
cp "$demo/env-vars" "$kept/env-vars"
cp /bin/busybox "$kept/busybox"
sync
echo "kept directory: $((per * dirs)) files of $size bytes in $kept ($(stat -f -c %T "$kept")); $(nproc) CPUs; uid $(id -u)" >&2

now() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

run_nbs() { TMPDIR=$work "$nbs" "$@"; }

# Entry. One untimed run first warms the page cache for everyone.
cp -a "$kept" "$top/warm" && rm -rf "$top/warm"
t0=$(now); cp -a "$kept" "$top/cp"; t1=$(now); rm -rf "$top/cp"
cp_ns=$((t1 - t0))
t0=$(now); run_nbs shell "$kept" true; t1=$(now)
view_ns=$((t1 - t0))
t0=$(now); run_nbs shell --copy "$kept" true; t1=$(now)
copy_ns=$((t1 - t0))
mode=$(run_nbs --debug shell "$kept" true 2>&1 | sed -n 's/.*entry mode: \([a-z-]*\).*/\1/p' | head -n 1)
echo "entry: cp -a $(secs $cp_ns) s; nbs shell ($mode) $(secs $view_ns) s = $(ratio $view_ns $cp_ns) x cp -a; nbs shell --copy $(secs $copy_ns) s = $(ratio $copy_ns $cp_ns) x cp -a"

# Disk used by a session that has appended a line to one file: the
# sandbox waits on a fifo until the work directory has been measured.
disk() {
	fifo=$top/fifo
	rm -f "$fifo"
	mkfifo "$fifo"
	run_nbs shell "$@" "$kept" sh -c 'echo line >> /build/d0/f0; echo appended; read -r _' <"$fifo" >"$top/out" &
	pid=$!
	exec 9>"$fifo"
	while ! grep -q appended "$top/out" 2>/dev/null; do sleep 0.1; done
	du -sk "$work" 2>/dev/null | cut -f1  # overlayfs's work/work is 0000
	exec 9>&-
	wait $pid || true
}
view_kb=$(disk)
copy_kb=$(disk --copy)
echo "disk after appending one line: nbs shell ($mode) ${view_kb} KiB; --copy ${copy_kb} KiB"

# Walks: five busybox finds of the whole tree.
walk='for i in 1 2 3 4 5; do /build/busybox find /build >/dev/null; done'
t0=$(now); for i in 1 2 3 4 5; do /bin/busybox find "$kept" >/dev/null; done; t1=$(now)
host_ns=$((t1 - t0))
inside() {
	run_nbs shell "$@" "$kept" sh -c 's=${EPOCHREALTIME/./}; '"$walk"'; e=${EPOCHREALTIME/./}; echo $(((e - s) * 1000))'
}
view_walk=$(inside)
copy_walk=$(inside --copy)
echo "5 walks: host $(secs $host_ns) s; nbs shell ($mode) $(secs "$view_walk") s = $(ratio "$view_walk" $host_ns) x host; --copy $(secs "$copy_walk") s = $(ratio "$copy_walk" $host_ns) x host"
