#!/bin/sh
# Times the start of a sandbox on a tiny kept directory: `nbs shell DIR
# true` against bubblewrap doing the same work by hand (cp -a of the
# directory into a fresh temporary directory, the same namespaces, uid
# 1000 / gid 100, /nix read-only, the build's shell sourcing env-vars,
# then removing the copy), in one run, side by side, and prints the ratio
# and nbs's peak RSS. Goals (issue 15): ratio <= 1.0, peak RSS <= 30 MB.
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
# caches (~/.cache/nbs) are warmed by the first, discarded run.
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
	go build -o "$nbs" ./cmd/nbs
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

echo "kept directory: $dir ($(du -sh "$dir" 2>/dev/null | cut -f1)); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); uid $(id -u)" >&2
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/h.json" \
	-n nbs "$nbs shell $dir true" -n bwrap "$work/bwrap.sh"
rss=$(/usr/bin/time -v "$nbs" shell "$dir" true 2>&1 >/dev/null | sed -n 's/.*Maximum resident set size (kbytes): //p')
awk -v rss="$rss" '
	/"command":/ { split($0, a, "\""); name = a[4] }
	/"median":/ { gsub(/[ ,]/, ""); split($0, a, ":"); med[name] = a[2] }
	END {
		printf "median: nbs %.1f ms, bwrap %.1f ms: nbs/bwrap = %.2f x (goal <= 1.0)\n", med["nbs"] * 1000, med["bwrap"] * 1000, med["nbs"] / med["bwrap"]
		printf "nbs peak RSS: %.1f MB (goal <= 30)\n", rss / 1024
	}' "$work/h.json"
