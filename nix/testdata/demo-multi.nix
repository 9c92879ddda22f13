let
  bash = builtins.path { path = /bin/bash-static; name = "bash"; };
  lib = derivation {
    name = "demo-lib";
    system = builtins.currentSystem;
    builder = bash;
    args = [ "-c" "echo > $out" ];
  };
  fod = derivation {
    name = "demo-fod";
    system = builtins.currentSystem;
    builder = bash;
    args = [ "-c" "echo -n hi > $out" ];
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4";
  };
  rfod = derivation {
    name = "demo-rfod";
    system = builtins.currentSystem;
    builder = bash;
    args = [ "-c" "echo -n hi > $out" ];
    outputHashMode = "recursive";
    outputHashAlgo = "sha256";
    outputHash = "0000000000000000000000000000000000000000000000000000";
  };
in derivation {
  name = "demo-multi";
  system = builtins.currentSystem;
  builder = bash;
  outputs = [ "out" "dev" "lib" ];
  dep = lib;
  fixed = fod;
  rfixed = rfod;
  weird = "tab\there \"quoted\" back\\slash\r\nnewline $dollar `tick` café ctrl";
  args = [ "-c" "echo \"$dep\" > $out; mkdir $dev $lib" ];
}
