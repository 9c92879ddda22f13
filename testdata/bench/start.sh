#!/bin/sh
# Times the start of a sandbox on a tiny kept directory: `nbs shell DIR
# true` against bubblewrap doing the same work by hand (cp -a of the
# directory into a fresh temporary directory, the same namespaces, uid
# 1000 / gid 100, /nix read-only, the build's shell sourcing env-vars,
# then removing the copy), in one run, side by side, in blocks
# (NBS_BENCH_BLOCKS, default 5, of NBS_BENCH_RUNS / blocks runs each),
# and prints each block's ratio, their median and nbs's peak RSS. Goals
# (issue 15): ratio <= 1.0, peak RSS <= 30 MB.
#
#   testdata/bench/start.sh [DIR]
#   NBS=./nbs NBS_BENCH_RUNS=200 testdata/bench/start.sh /tmp/nix-build-x.drv-0
#
# Without DIR it builds testdata/e2e's failing derivation with nix-build
# --keep-failed and uses the directory Nix kept (removed at the end when
# the caller may). NBS names the nbs binary (default: built from this
# tree into a temporary directory). Needs hyperfine (apt-get install
# hyperfine), bwrap (apt-get install bubblewrap) and GNU time
# (/usr/bin/time). Run it as the user whose start you care about; nbs's
# caches (~/.cache/nbs) are warmed by the first, discarded run. The entry
# mode is nbs's usual choice (nbs shell --debug names it): the kernel's
# overlay for a directory of your own or as root (idmapped under sudo,
# or when root's build user is not the directory's owner), fuse-overlayfs
# for a user and Nix's build user's directory; NBS_ENTRY_MODE=copy,
# overlay or fuse asks for one. On a loaded machine the load moves
# between hyperfine's runs of one command and of the other, hence the
# blocks (chrt -r 1 gives both the same priority over the rest).
set -eu
cd "$(dirname "$0")/../.."

for t in hyperfine bwrap /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "start.sh: $t not found (apt-get install hyperfine bubblewrap time)" >&2; exit 1; }
done
runs=${NBS_BENCH_RUNS:-100}
work=$(mktemp -d "${TMPDIR:-/tmp}/nbs-bench-start.XXXXXX")
made=
cleanup() {
	rm -rf "$work"
	[ -z "$made" ] || rm -rf "$made" 2>/dev/null || echo "start.sh: left $made (owned by Nix's build user; sudo nbs gc removes it)" >&2
}
trap cleanup EXIT INT TERM

nbs=${NBS:-}
if [ -z "$nbs" ]; then
	nbs=$work/nbs
	CGO_ENABLED=0 go build -o "$nbs" ./cmd/nbs
fi

dir=${1:-}
if [ -z "$dir" ]; then
	log=$(nix-build --no-out-link --keep-failed testdata/e2e -A fail --argstr nonce "bench-start-$$-$(date +%s)" 2>&1) && {
		echo "start.sh: the failing derivation built" >&2
		exit 1
	}
	dir=$(echo "$log" | sed -n "s/.*keeping build directory '\([^']*\)'.*/\1/p")
	[ -n "$dir" ] || { echo "start.sh: nix-build kept no directory:" >&2; echo "$log" >&2; exit 1; }
	made=$dir
fi
shell=$(sed -n "s/^declare -x SHELL=\"\(.*\)\"$/\1/p" "$dir/env-vars")
[ -x "$shell" ] || { echo "start.sh: no executable SHELL in $dir/env-vars" >&2; exit 1; }

# What nbs does for `nbs shell DIR true`, done by hand with bwrap.
cat >"$work/bwrap.sh" <<EOF
#!/bin/sh
set -e
d=\$(mktemp -d "$work/bw.XXXXXX")
cp -a "$dir" "\$d/build"
bwrap --unshare-all --uid 1000 --gid 100 --hostname localhost \
	--ro-bind /nix /nix --bind "\$d/build" /build --proc /proc --dev /dev --tmpfs /tmp \
	--chdir /build --die-with-parent --clearenv \
	"$shell" -c 'source /build/env-vars; exec "\$@"' -- true
rm -rf "\$d"
EOF
chmod +x "$work/bwrap.sh"
"$work/bwrap.sh" || { echo "start.sh: bwrap cannot run here (user namespaces?)" >&2; exit 1; }
"$nbs" shell "$dir" true || { echo "start.sh: nbs shell $dir true failed" >&2; exit 1; }

echo "kept directory: $dir ($(du -sh "$dir" 2>/dev/null | cut -f1)); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); uid $(id -u); $("$nbs" shell --debug "$dir" true 2>&1 | sed -n 's/^nbs: debug: \(entry mode: [a-z]*\).*/\1/p')" >&2
# In blocks, each a hyperfine run of both commands: a block's ratio
# compares runs close in time; the spread of the blocks' ratios says how
# much the load moved.
blocks=${NBS_BENCH_BLOCKS:-5}
per=$(( (runs + blocks - 1) / blocks ))
[ "$per" -ge 2 ] || per=2
: >"$work/ratios"
i=0
while [ "$i" -lt "$blocks" ]; do
	hyperfine -N --warmup 3 --runs "$per" --style none --export-json "$work/h$i.json" \
		-n nbs "$nbs shell $dir true" -n bwrap "$work/bwrap.sh" >/dev/null
	awk '
		/"command":/ { split($0, a, "\""); name = a[4] }
		/"median":/ { gsub(/[ ,]/, ""); split($0, a, ":"); med[name] = a[2] }
		END { printf "%.4f %.6f %.6f\n", med["nbs"] / med["bwrap"], med["nbs"], med["bwrap"] }' "$work/h$i.json" >>"$work/ratios"
	i=$((i + 1))
done
rss=$(/usr/bin/time -v "$nbs" shell "$dir" true 2>&1 >/dev/null | sed -n 's/.*Maximum resident set size (kbytes): //p')
sort -n "$work/ratios" | awk -v rss="$rss" -v per="$per" '
	{ r[NR] = $1; n[NR] = $2; b[NR] = $3 }
	END {
		m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
		printf "nbs/bwrap per block of %d runs each (median nbs ms / bwrap ms):", per
		for (i = 1; i <= NR; i++) printf " %.2f (%.1f/%.1f)", r[i], n[i] * 1000, b[i] * 1000
		printf "\nmedian block ratio: nbs/bwrap = %.2f x, range %.2f-%.2f (goal <= 1.0)\n", m, r[1], r[NR]
		printf "nbs peak RSS: %.1f MB (goal <= 30)\n", rss / 1024
	}'
