# The kept directory of the /build view's benchmarks (entry.sh, view.sh):
# a build that writes `files` files of `bytes` bytes in all into its
# build directory, in 100 subdirectories, writes env-vars like stdenv and
# fails, so that nix-build --keep-failed keeps a directory owned by a
# Nix build user, as a real failed build does. No nixpkgs, no network:
# the builder is the host's static bash and the tools its static busybox,
# put into the store with builtins.path (like ../e2e). The files are
# written by bash itself (printf to a file forks nothing), so that even
# 50 000 of them take seconds.
#
#   nix-build --keep-failed testdata/bench --arg files 50000 --arg bytes 1073741824 --argstr nonce "$RANDOM"
{ bash ? "/bin/bash-static"
, busybox ? "/bin/busybox"
, files ? 50000
, bytes ? 1073741824
  # Changes the derivation's hash, so that runs at the same time never
  # share a build.
, nonce ? ""
}:
let
  sh = builtins.path { path = /. + bash; name = "bash"; };
  bb = builtins.path { path = /. + busybox; name = "busybox"; };
  tools = import ../busybox-tools.nix { inherit sh bb; name = "nbs-bench-tools"; };
in
derivation {
  name = "nbs-bench-kept";
  system = builtins.currentSystem;
  inherit nonce;
  builder = sh;
  PATH = "${tools}/bin";
  SHELL = "${sh}";
  files = toString files;
  bytes = toString bytes;
  args = [ "-c" ''
    set -e
    dirs=100
    per=$(( (files + dirs - 1) / dirs ))
    size=$(( bytes / (per * dirs) ))
    # Text, since a shell variable cannot hold a NUL byte.
    blob=$(head -c "$size" /dev/urandom | base64 -w 0 | head -c "$size")
    i=0
    while [ $i -lt $dirs ]; do
      mkdir d$i
      j=0
      while [ $j -lt $per ]; do
        printf '%s' "$blob" > d$i/f$j
        j=$((j + 1))
      done
      i=$((i + 1))
    done
    export -p > $NIX_BUILD_TOP/env-vars
    echo "nbs-bench: $((per * dirs)) files of $size bytes written; failing on purpose" >&2
    exit 1
  '' ];
}
