# The differential test's derivation (cmd/nbs/e2e_probe_test.go): its
# builder runs the probe (testdata/probe, a static Go binary) inside real
# Nix's sandbox, writes its facts to /build/probe.out and fails, so that
# Nix keeps the directory and `nbs shell` can run the same probe on it.
#
#   CGO_ENABLED=0 go build -o /tmp/probe ./testdata/probe
#   nix-build --keep-failed testdata/probe --argstr probe /tmp/probe --argstr nonce "$RANDOM"
#
# The probe must be started the same way in both worlds. nbs runs a
# command as
#     $SHELL -c 'source /build/env-vars; exec "$@"' -- CMD
# so the builder is that same static bash doing the same: it writes
# env-vars as stdenv does (`export -p`), sources it and execs the probe,
# which thereby is PID 1 like any builder. The only addition is the
# redirection of stdout to probe.out. The build fails because the probe
# exits with NBS_PROBE_EXIT (1), which it also does under nbs.
{ probe
, bash ? "/bin/bash-static"
  # Changes the derivation's hash, so that tests running at the same time
  # never share a build.
, nonce ? ""
}:
let
  sh = builtins.path { path = /. + bash; name = "bash"; };
  p = builtins.path { path = /. + probe; name = "nbs-probe"; };
  # A directory input: Nix bind-mounts those (files it may hard-link).
  dir = builtins.path {
    path = ./.;
    name = "nbs-probe-input";
    filter = path: type: baseNameOf path == "default.nix";
  };
in
derivation {
  name = "nbs-probe";
  system = builtins.currentSystem;
  inherit nonce;
  builder = sh;
  SHELL = "${sh}";
  NBS_PROBE_EXIT = "1";
  NBS_PROBE_INPUT_DIR = "${dir}";
  args = [
    "-c"
    ''export -p > "$NIX_BUILD_TOP/env-vars"; source "$NIX_BUILD_TOP/env-vars"; exec "$@" > "$NIX_BUILD_TOP/probe.out"''
    "--"
    p
  ];
}
