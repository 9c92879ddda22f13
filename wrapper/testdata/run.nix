# Derivations for run_test.go: no nixpkgs, a static bash as the builder.
# nonce makes each test run's derivations new, and findable in /proc.
{ nonce }:
let
  bash = builtins.path { path = /bin/bash-static; name = "bash"; };
  mk = name: script: derivation {
    name = "nbs-wrapper-${name}";
    system = builtins.currentSystem;
    builder = bash;
    args = [ "-c" script ];
    inherit nonce;
  };
in {
  bad = mk "bad" "echo hi ${nonce}; export -p > /build/env-vars; exit 3";
  good = mk "good" "echo building ${nonce}; echo ok > $out";
  # sleep is not in the sandbox: wait on a pipe that never gets data.
  slow = mk "slow" "echo sleeping ${nonce}; exec 3<> <(:); read -t 60 <&3; exit 1";
}
