# Derivations for nbs replay's end-to-end tests, offline like
# testdata/e2e: a static bash from the host as the builder, busybox as
# the tools.
#
#   nix-build --keep-failed testdata/replay -A stdenv --argstr nonce "$RANDOM"
{ bash ? "/bin/bash-static"
, busybox ? "/bin/busybox"
, nonce ? ""
  # Seconds the stdenv builds sleep in configurePhase.
, delay ? "0"
}:
let
  system = builtins.currentSystem;
  sh = builtins.path { path = /. + bash; name = "bash"; };
  bb = builtins.path { path = /. + busybox; name = "busybox"; };
  tools = import ../busybox-tools.nix { inherit sh bb; name = "nbs-test-tools"; };

  # Like nixpkgs' stdenv, in the parts a replay relies on: the builder
  # is `bash -e default-builder.sh`, which sources $stdenv/setup and
  # calls genericBuild; setup turns on errexit, nounset, pipefail and
  # nullglob, sets stdenv's EXIT trap, and runPhase writes env-vars
  # with mode 0600 (dumpVars) before it evals each phase's code.
  stdenv = derivation {
    name = "nbs-replay-stdenv";
    inherit system;
    builder = sh;
    PATH = "${tools}/bin";
    args = [ "-c" ''
      mkdir -p $out
      cat > $out/setup <<'EOF'
      set -eu
      set -o pipefail
      shopt -s nullglob
      export PATH=${tools}/bin
      exitHandler() {
          exitCode="$?"
          set +e
          if (( "$exitCode" != 0 )); then echo "stdenv: build failed ($exitCode)" >&2; fi
          return "$exitCode"
      }
      trap "exitHandler" EXIT
      dumpVars() {
          (umask 077; : > "$NIX_BUILD_TOP/env-vars")
          export 2>/dev/null >| "$NIX_BUILD_TOP/env-vars"
      }
      runPhase() {
          local curPhase="$*"
          echo "Running phase: $curPhase"
          dumpVars
          eval "''${!curPhase:-$curPhase}"
      }
      genericBuild() {
          for curPhase in ''${phases:-buildPhase}; do runPhase "$curPhase"; done
      }
      EOF
    '' ];
  };
  defaultBuilder = builtins.toFile "default-builder.sh" ''
    source $stdenv/setup
    genericBuild
  '';

  # Writes the environment to /build/env.txt and fails: Nix keeps it,
  # and a replay writes its own.
  dumpScript = "export -p > $NIX_BUILD_TOP/env.txt; exit 1";

  mkStdenv = name: attrs: derivation ({
    inherit name system nonce stdenv;
    builder = sh;
    args = [ "-e" defaultBuilder ];
    SHELL = "${sh}";
    phases = "configurePhase buildPhase";
    configurePhase = ''
      sleep ${delay}
      export EARLY_EXPORT=configured
      configureLocal=c
    '';
  } // attrs);
  argsScript = builtins.toFile "args.sh" ''
    inner() { false; }
    outer() { inner "$2" "$1 x"; }
    [ -z "$atTop" ] || false
    outer one "two three"
  '';
  mkArgs = name: atTop: derivation {
    inherit name system nonce atTop;
    builder = sh;
    args = [ "-e" argsScript "top" "level args" ];
  };
in
{
  # Fails in buildPhase after setting a variable it does not export,
  # defining a function, exporting after dumpVars and cd'ing.
  stdenv = mkStdenv "nbs-replay-stdenv-fail" {
    buildPhase = ''
      phaseLocal=not-exported
      phaseFn() { echo "phaseFn here"; }
      export LATE_EXPORT=late
      mkdir -p src/deep
      cd src/deep
      echo "nbs-replay: buildPhase fails" >&2
      false
      echo "not reached"
    '';
  };

  # Succeeds: a replay of it succeeds too.
  stdenvOk = mkStdenv "nbs-replay-stdenv-ok" {
    buildPhase = ''
      mkdir -p $out
      echo built > $out/result
    '';
  };

  # Not stdenv, bash: `exit` without errexit.
  plainBash = derivation {
    name = "nbs-replay-plain-bash";
    inherit system nonce;
    builder = sh;
    PATH = "${tools}/bin";
    passAsFile = [ "text" ];
    text = "passed as a file";
    args = [ "-c" ''
      plainVar=set
      cd /tmp
      cat "$textPath"
      exit 6
    '' ];
  };

  # Positional parameters at the stop: a builder script called with
  # arguments fails inside a function called with others (fnArgs), or at
  # its top level (topArgs).
  fnArgs = mkArgs "nbs-replay-fn-args" "";
  topArgs = mkArgs "nbs-replay-top-args" "1";

  # Not bash at all: busybox sh (argv[0] is what busybox goes by, and
  # Nix gives the builder the base name of its path).
  busybox = derivation {
    name = "nbs-replay-busybox";
    inherit system nonce;
    builder = "${tools}/bin/sh";
    PATH = "${tools}/bin";
    args = [ "-c" ''
      echo left > left-behind.txt
      exit 7
    '' ];
  };

  # What Nix hands a builder, written into /build for the replay tests to
  # compare: the environment, passAsFile, exportReferencesGraph and an
  # output placeholder; with structured attrs, .attrs.json and .attrs.sh.
  envDump = derivation {
    name = "nbs-replay-env";
    inherit system nonce;
    builder = sh;
    outputs = [ "out" "dev" ];
    PATH = "${tools}/bin";
    passAsFile = [ "text" ];
    text = "to ${builtins.placeholder "dev"}";
    exportReferencesGraph = [ "graph" tools ];
    selfRef = builtins.placeholder "out";
    args = [ "-c" dumpScript ];
  };
  structured = derivation {
    name = "nbs-replay-structured";
    inherit system nonce;
    builder = sh;
    __structuredAttrs = true;
    outputs = [ "out" "dev" ];
    PATH = "${tools}/bin";
    list = [ "a" "it's" 3 true null ];
    set = { k = "v"; n = 1; };
    nested = [ [ "x" ] ];
    float = 1.5;
    selfRef = builtins.placeholder "out";
    args = [ "-c" dumpScript ];
  };
  # exportReferencesGraph under structured attrs: path infos in
  # .attrs.json (sh is content-addressed: builtins.path).
  structuredGraph = derivation {
    name = "nbs-replay-structured-graph";
    inherit system nonce;
    builder = sh;
    __structuredAttrs = true;
    PATH = "${tools}/bin";
    exportReferencesGraph = { graph = [ tools ]; shGraph = sh; };
    args = [ "-c" dumpScript ];
  };
}
