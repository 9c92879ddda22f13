# A flake with no inputs for nbs's end-to-end tests (cmd/nbs/
# e2e_remote_test.go): it builds offline, with the static bash and busybox
# that the test copies next to this file (pure evaluation cannot read
# /bin), in Nix's real sandbox.
#
#   nbs build .#bad --run 'cat /build/src/file.txt'
#   nbs build .#good
{
  description = "nbs end-to-end test flake";

  outputs = { self }:
    let
      forSystem = system:
        let
          sh = "${./bash}";
          tools = derivation {
            name = "nbs-flake-tools";
            inherit system;
            builder = sh;
            args = [ "-c" ''
              (exec -a mkdir ${./busybox} -p $out/bin) &&
              (exec -a cp ${./busybox} ${./busybox} $out/bin/busybox) &&
              $out/bin/busybox --install -s $out/bin
            '' ];
          };
          mk = name: script: derivation {
            inherit name system;
            builder = sh;
            PATH = "${tools}/bin";
            SHELL = sh;
            args = [ "-c" "set -e\n${script}" ];
          };
        in
        {
          bad = mk "nbs-flake-bad" ''
            mkdir -p src
            echo "from the flake build" > src/file.txt
            cd src
            export -p > $NIX_BUILD_TOP/env-vars
            exit 3
          '';
          good = mk "nbs-flake-good" ''
            echo ok > $out
          '';
        };
    in
    {
      packages.x86_64-linux = forSystem "x86_64-linux";
      packages.aarch64-linux = forSystem "aarch64-linux";
    };
}
