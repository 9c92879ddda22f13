#!/bin/sh
# The /build view on a big kept directory (issue 15), for the caller, in
# each entry mode it has, one row each, side by side in one run:
#
#   - entry: `nbs shell DIR true` against `cp -a DIR` (goal <= 0.05 x);
#   - disk: what the work directory holds while the shell has appended a
#     line to one small file (goal <= 16 MB);
#   - walk: five `find /build` inside against five finds of DIR on the
#     host, the same busybox (the build's own, from env-vars' PATH) on
#     both sides, after an untimed walk warmed the host's caches (goal
#     <= 1.5 x). busybox find lstats every entry, the work of GNU find's
#     -printf '%s\n'. The first of the five is also given on its own:
#     the view's caches are new in every session;
#   - peak RSS (goal <= 30 MB): GNU time's maximum for the entry (the
#     largest of nbs and of any process it waited for: the sandbox's and
#     the FUSE server), and the VmHWM of nbs itself and of the FUSE
#     server (fuse-overlayfs, its own process) read after the walks,
#     before the session ends.
#
# Rows (NBS_BENCH_ROWS, default "view copy own"): the default view
# (NBS_ENTRY_MODE picks another), --copy, and, when the caller is not
# root and DIR is not theirs (a build user's: the view is
# fuse-overlayfs), the kernel overlay over a copy of DIR of the caller's
# own. Nothing is asserted; the numbers are printed.
#
#   testdata/bench/entry.sh [DIR]
#
# DIR is a directory kept by a failed build of testdata/bench (the
# session appends to its d0/f0 and walks with the busybox of its PATH);
# testdata/bench/view.sh makes one and runs this as root and as an
# unprivileged user.
# Without DIR, nix-build --keep-failed builds testdata/bench with
# NBS_BENCH_FILES files (default 50 000) of NBS_BENCH_BYTES bytes in all
# (default 1 GiB), and the directory Nix kept is removed at the end when
# the caller may (root; else sudo nbs gc). NBS_BENCH_NBS names an nbs
# binary to use instead of one built from this tree. Work files go to
# $TMPDIR (default /tmp), which should be the file system of the kept
# directory. Needs Nix, busybox-static, bash-static, GNU time, Go.
set -eu
cd "$(dirname "$0")/../.."

files=${NBS_BENCH_FILES:-50000}
bytes=${NBS_BENCH_BYTES:-1073741824}
[ -x /usr/bin/time ] || { echo "entry.sh: GNU time (/usr/bin/time) is missing (apt-get install time)" >&2; exit 1; }
top=$(mktemp -d "${TMPDIR:-/tmp}/nbs-bench.XXXXXX")
made=
cleanup() {
	rm -rf "$top"
	[ -z "$made" ] || rm -rf "$made" 2>/dev/null || echo "entry.sh: left $made (owned by Nix's build user; sudo nbs gc removes it)" >&2
}
trap cleanup EXIT
trap 'exit 1' INT TERM
chmod 755 "$top"
nbs=${NBS_BENCH_NBS:-}
if [ -z "$nbs" ]; then
	nbs=$top/nbs
	CGO_ENABLED=0 go build -o "$nbs" ./cmd/nbs
fi
work=$top/tmp
mkdir -p "$work"
chmod 1777 "$work"

dir=${1:-}
if [ -z "$dir" ]; then
	log=$(nix-build --no-out-link --keep-failed testdata/bench --arg files "$files" --arg bytes "$bytes" \
		--argstr nonce "entry-$$-$(date +%s)" 2>&1) && { echo "entry.sh: the failing derivation built" >&2; exit 1; }
	dir=$(echo "$log" | sed -n "s/.*keeping build directory '\([^']*\)'.*/\1/p")
	[ -n "$dir" ] || { echo "entry.sh: nix-build kept no directory (is Nix set up? .ci/setup-host):" >&2; echo "$log" >&2; exit 1; }
	made=$dir
fi
[ -r "$dir/env-vars" ] || { echo "entry.sh: $dir has no readable env-vars: not a kept build directory" >&2; exit 1; }
bin=$(sed -n 's/^declare -x PATH="\([^:"]*\).*/\1/p' "$dir/env-vars")
bb=$bin/busybox
[ -x "$bb" ] || { echo "entry.sh: no busybox in the first directory of $dir's PATH ($bin)" >&2; exit 1; }

now() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null || echo 0; }

run_nbs() { TMPDIR=$work "$nbs" "$@"; }

walks() {
	t0=$(now)
	for i in 1 2 3 4 5; do "$bb" find "$1" >/dev/null; done
	t1=$(now)
	echo $((t1 - t0))
}

# The session of the disk and walk figures: it waits on a fifo for the
# host's walks, walks five times, timing the first and all five, appends
# a line to one file and waits again until the host side has measured
# the work directory and read the VmHWMs.
session='t() { s=${EPOCHREALTIME/./}; echo $((s * 1000)); }
echo ready; read -r _
a=$(t); find /build >/dev/null; b=$(t)
for i in 2 3 4 5; do find /build >/dev/null; done; c=$(t)
echo "walks $((b - a)) $((c - a))"
echo line >> /build/d0/f0; echo appended; read -r _'

# wait_for WORD: until the session has printed WORD.
wait_for() {
	while ! grep -q "$1" "$top/out" 2>/dev/null; do
		kill -0 $pid 2>/dev/null || { echo "entry.sh: the session of $label ended early:" >&2; cat "$top/out" >&2; exit 1; }
		sleep 0.1
	done
}

# row LABEL DIR [FLAG...]: one row of figures for nbs shell FLAG... DIR.
row() {
	label=$1 d=$2
	shift 2
	t0=$(now); cp -a "$d" "$top/cp"; t1=$(now); rm -rf "$top/cp"
	cp_ns=$((t1 - t0))
	t0=$(now)
	TMPDIR=$work /usr/bin/time -f %M -o "$top/rss" "$nbs" --debug shell "$@" "$d" true 2>"$top/err" ||
		{ echo "entry.sh: nbs shell $* $d true failed:" >&2; cat "$top/err" >&2; exit 1; }
	t1=$(now)
	entry_ns=$((t1 - t0))
	tree_kb=$(cat "$top/rss")
	mode=$(sed -n 's/.*entry mode: \([a-z-]*\).*/\1/p' "$top/err" | head -n 1)

	fifo=$top/fifo
	rm -f "$fifo" "$top/out"
	mkfifo "$fifo"
	TMPDIR=$work "$nbs" shell "$@" "$d" sh -c "$session" <"$fifo" >"$top/out" &
	pid=$!
	exec 9>"$fifo"
	wait_for ready
	# The same conditions for both walks: a copy's writes flushed, the
	# host's caches warm, one walk after the other.
	sync
	"$bb" find "$d" >/dev/null
	host_ns=$(walks "$d")
	echo go >&9
	wait_for appended
	disk_kb=$(du -sk "$work" 2>/dev/null | cut -f1) # overlayfs's work/work is 0000
	nbs_kb=$(hwm $pid)
	srv=$(pgrep -P $pid -x fuse-overlayfs || true)
	srv_kb=-
	[ -z "$srv" ] || srv_kb=$(mb "$(hwm "$srv")")
	exec 9>&-
	wait $pid || true
	set -- $(sed -n 's/^walks //p' "$top/out")
	first_ns=$1 all_ns=$2

	printf '%s (%s): entry %s s = %s x cp -a (%s s); disk %s KiB; 5 walks %s s = %s x host (%s s), the first %s x a host walk; RSS MB: GNU time %s, nbs VmHWM %s, server VmHWM %s\n' \
		"$label" "$mode" "$(secs $entry_ns)" "$(ratio $entry_ns $cp_ns)" "$(secs $cp_ns)" "$disk_kb" \
		"$(secs "$all_ns")" "$(ratio "$all_ns" "$host_ns")" "$(secs "$host_ns")" "$(ratio "$first_ns" $((host_ns / 5)))" \
		"$(mb "$tree_kb")" "$(mb "$nbs_kb")" "$srv_kb"
}

# Warm: the page cache for the copies, nbs's caches (~/.cache/nbs).
cp -a "$dir" "$top/cp" && rm -rf "$top/cp"
run_nbs shell "$dir" true
sync
echo "kept directory: $dir ($(find "$dir" -type f | wc -l) files, $(du -sh "$dir" | cut -f1), $(stat -c %U "$dir"), $(stat -f -c %T "$dir")); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); uid $(id -u)" >&2
rows=${NBS_BENCH_ROWS:-view copy own}
for r in $rows; do
	case $r in
	view) row view "$dir" ;;
	copy) row copy "$dir" --copy ;;
	own)
		# A kept directory of the caller's own: the kernel overlay.
		[ "$(id -u)" != 0 ] && [ "$(stat -c %u "$dir")" != "$(id -u)" ] || continue
		cp -a "$dir" "$top/own"
		row "view over a directory of your own" "$top/own"
		rm -rf "$top/own"
		;;
	*) echo "entry.sh: unknown row $r in NBS_BENCH_ROWS (view, copy, own)" >&2; exit 1 ;;
	esac
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
