#!/bin/sh
# Times the sandbox's copyTree against cp -a on the same generated tree and prints
# the ratio. The tree is ~1 GiB in 50 000 files unless NBS_BENCH_FILES and
# NBS_BENCH_BYTES say otherwise; it is made once in a temporary directory
# under $TMPDIR (put that on the file system you care about) and removed at
# the end. Each benchmark copies the tree NBS_BENCH_TIME times (default 3x);
# NBS_BENCH_COUNT (default 1) repeats the benchmarks, and the ratio uses the
# fastest run of each, the one least disturbed by whatever else the machine
# is doing.
#
#   testdata/bench/copy.sh
#   NBS_BENCH_FILES=5000 NBS_BENCH_BYTES=134217728 NBS_BENCH_COUNT=3 testdata/bench/copy.sh
set -eu
cd "$(dirname "$0")/../.."

files=${NBS_BENCH_FILES:-50000}
bytes=${NBS_BENCH_BYTES:-1073741824}
benchtime=${NBS_BENCH_TIME:-3x}
count=${NBS_BENCH_COUNT:-1}
dir=$(mktemp -d "${TMPDIR:-/tmp}/nbs-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

echo "tree: $files files, $bytes bytes, in $dir ($(stat -f -c %T "$dir")); $(nproc) CPUs" >&2
out=$(NBS_BENCH_FILES=$files NBS_BENCH_BYTES=$bytes NBS_BENCH_DIR=$dir \
	go test -run '^$' -bench 'CopyTree|CpA' -benchtime "$benchtime" -count "$count" ./sandbox/)
echo "$out"
echo "$out" | awk '
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		if (!(name in best)) order[++n] = name
		if (!(name in best) || $3 < best[name]) best[name] = $3
	}
	END {
		cp = best["BenchmarkCpA"]
		if (cp == "") { print "no cp -a result"; exit 1 }
		printf "cp -a: %.3f s per copy\n", cp / 1e9
		for (i = 1; i <= n; i++) {
			if (order[i] == "BenchmarkCpA") continue
			printf "%s: %.3f s per copy, %.2f x the time of cp -a\n", order[i], best[order[i]] / 1e9, best[order[i]] / cp
		}
	}'
