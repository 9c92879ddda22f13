# Derivations for the captured logs: no nixpkgs, the builder is a static
# bash, so they build offline with a plain Nix.
let
  bash = builtins.path { path = /bin/bash-static; name = "bash"; };
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = bash;
    args = [ "-c" script ];
  };
in rec {
  bad = mk "wr-bad" "echo hi; export -p > /build/env-vars; exit 3";
  bad2 = mk "wr-bad-two" "echo second; echo to-stderr >&2; export -p > /build/env-vars; exit 4";
  good = mk "wr-good" "echo building good; echo ok > $out";
  dep = mk "wr-dep-fail" "echo dep; export -p > /build/env-vars; exit 5";
  top = derivation {
    name = "wr-top";
    system = builtins.currentSystem;
    builder = bash;
    args = [ "-c" "echo ${dep}; echo > $out" ];
  };
  fod = derivation {
    name = "wr-fod";
    system = builtins.currentSystem;
    builder = bash;
    args = [ "-c" "echo fetching; echo wrong > $out" ];
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = "0000000000000000000000000000000000000000000000000000";
  };
  noout = mk "wr-noout" "echo forgot the output";
  # sleep is not in the sandbox: wait on a pipe that never gets data.
  slow = mk "wr-slow" "echo sleeping; exec 3<> <(:); read -t 60 <&3; exit 1";
}
