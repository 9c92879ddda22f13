# A stand-in for nixpkgs' stdenv, for nbs's offline tests (no nixpkgs).
# setup.sh, source-stdenv.sh and default-builder.sh are our own code,
# written after reading nixpkgs' pkgs/stdenv/generic files; setup.sh's
# header lists the behaviours of nixpkgs' setup.sh it reproduces.
# setup.sh is put into $stdenv/setup after the lines nixpkgs' stdenv
# builder writes first (SHELL, initialPath); mkDerivation's builder is
# bash -e source-stdenv.sh default-builder.sh. initialPath holds
# busybox's applets and an `install` script.
#
# nbs was also checked by hand against nixpkgs' real setup.sh (master of
# late 2026: dumpVars with install -m 0600, concatTo, the nix*Log
# helpers), source-stdenv.sh and default-builder.sh, kept outside this
# repository: the same widget builds (../e2e) with the real files as
# $stdenv/setup and as mkDerivation's args, busybox plus two shims
# (install; cp without --reflink) as initialPath. Results as with this
# stand-in (whose messages are its own), except that the real source-stdenv.sh fails on Nix 2.8 for
# structured attrs (it sources only $NIX_ATTRS_SH_FILE, a host path
# there), before setup writes any env-vars.
{ sh, tools }:
let
  system = builtins.currentSystem;

  install = derivation {
    name = "nbs-test-install";
    inherit system;
    builder = sh;
    PATH = "${tools}/bin";
    args = [ "-c" ''
      mkdir -p $out/bin
      { echo '#!${sh}'; cat ${./install.sh}; } > $out/bin/install
      chmod 0755 $out/bin/install
    '' ];
  };

  stdenv = derivation {
    name = "nbs-test-stdenv";
    inherit system;
    builder = sh;
    PATH = "${tools}/bin";
    initialPath = "${tools} ${install}";
    args = [ "-c" ''
      mkdir -p $out
      { echo 'export SHELL=${sh}'; echo "initialPath=\"$initialPath\""; cat ${./setup.sh}; } > $out/setup
    '' ];
  };

  mkDerivation = attrs: derivation ({
    inherit system stdenv;
    builder = sh;
    args = [ "-e" ./source-stdenv.sh ./default-builder.sh ];
  } // attrs);
in
{
  inherit stdenv mkDerivation;
}
