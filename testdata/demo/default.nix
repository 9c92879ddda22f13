# An offline demo of nbs: a build that fails like a real one, with no
# nixpkgs and no network. Its builder is Debian's static bash, put into
# the store with builtins.path; busybox provides the tools.
#
#   nbs build testdata/demo
#
# leaves you in the failed build's sandbox, in /build/demo-src, where
# `cat build.log`, `ls`, `id`, `hostname` show what the builder saw; fix
# `configure` and run `./configure` again.
let
  system = builtins.currentSystem;
  sh = builtins.path { path = /bin/bash-static; name = "bash"; };
  bb = builtins.path { path = /bin/busybox; name = "busybox"; };
  tools = import ../busybox-tools.nix { inherit sh bb; name = "nbs-demo-tools"; };
in
derivation {
  name = "nbs-demo";
  inherit system;
  builder = sh;
  PATH = "${tools}/bin";
  SHELL = "${sh}";
  args = [ "-c" ''
    set -e
    mkdir demo-src && cd demo-src
    printf '#!${sh}\necho "checking for libfoo... no"\nexit 1\n' > configure
    chmod +x configure
    export -p > $NIX_BUILD_TOP/env-vars
    echo "configuring"
    ./configure 2>&1 | tee build.log
    exit 1
  '' ];
}
