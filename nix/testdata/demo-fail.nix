let
  bash = builtins.path { path = /bin/bash-static; name = "bash"; };
  busybox = builtins.path { path = /bin/busybox; name = "busybox"; };
in derivation {
  name = "demo-fail";
  system = builtins.currentSystem;
  builder = bash;
  args = [ "-c" ''
    ${busybox} mkdir -p /build/src/sub; cd /build/src
    echo hello > file.txt
    export SHELL=${bash}
    export PATH=/path-not-set
    export -p > /build/env-vars
    echo building in $PWD >&2
    exit 3
  '' ];
}
