# A bin directory of busybox applets, made from the host's static busybox
# with the host's static bash as the builder: the tools of nbs's offline
# test and demo derivations, which have no nixpkgs. busybox picks the
# applet from argv[0], hence `exec -a`.
{ sh, bb, name }:
derivation {
  inherit name;
  system = builtins.currentSystem;
  builder = sh;
  args = [ "-c" ''
    (exec -a mkdir ${bb} -p $out/bin) &&
    (exec -a cp ${bb} ${bb} $out/bin/busybox) &&
    $out/bin/busybox --install -s $out/bin
  '' ];
}
