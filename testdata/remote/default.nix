# Derivations for nbs's remote-builder tests (cmd/nbs/e2e_remote_test.go):
# like ../e2e, no nixpkgs and no network; the builder is the host's static
# bash and the tools a static busybox, which Nix copies to the builder.
# name is per test, so that the test can put a decoy directory of the
# same name into the local /tmp.
#
#   nix-build --keep-failed testdata/remote -A fail --argstr name nbs-remote-x \
#     --max-jobs 0 --builders 'ssh://BUILDER x86_64-linux'
{ bash ? "/bin/bash-static"
, busybox ? "/bin/busybox"
, name ? "nbs-remote-fail"
, nonce ? ""
}:
let
  system = builtins.currentSystem;
  sh = builtins.path { path = /. + bash; name = "bash"; };
  bb = builtins.path { path = /. + busybox; name = "busybox"; };
  tools = import ../busybox-tools.nix { inherit sh bb; name = "nbs-remote-tools"; };
in
{
  # Fails with exit 3 on whichever machine builds it, leaving a file that
  # says where it ran.
  fail = derivation {
    inherit name system nonce;
    builder = sh;
    PATH = "${tools}/bin";
    SHELL = "${sh}";
    args = [ "-c" ''
      set -e
      mkdir -p src
      echo "built on $(uname -n)" > src/where.txt
      echo "from the remote build" > src/file.txt
      ln -s file.txt src/link
      cd src
      export -p > $NIX_BUILD_TOP/env-vars
      echo "nbs-remote: failing on purpose" >&2
      exit 3
    '' ];
  };

}
