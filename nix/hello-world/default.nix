# The assignment's first demo package: a C hello world that builds.
#
#   nix-build ./nix/hello-world/default.nix && ./result/bin/hello
#   nbs build ./nix/hello-world/default.nix     # same output, same ./result
#
# Needs the internet the first time: nixpkgs below comes from GitHub and the
# compiler from cache.nixos.org.
#
# nixpkgs is pinned to nixos-22.05 (head of the branch on 2022-05-31), the
# same pin as ../wttr/default.nix (see there why 22.05), so that one download
# serves both demos. sha256 is the NAR hash of the unpacked tarball; it was
# not computed here (no network) but taken from public pins of this revision
# and cross-checked: a fetchTarball pin (sha256 1d40v43x…) and a flake.lock
# (narHash sha256-BBeCZwZI…) agree. If Nix ever reports a hash mismatch for
# it, replace it with the hash Nix prints.
{ pkgs ? import (builtins.fetchTarball {
    url = "https://github.com/NixOS/nixpkgs/archive/a634c8f6c1fbf9b9730e01764999666f3436f10a.tar.gz";
    sha256 = "1d40v43x972li5fg7jadxkj341li41mf2cl6vv7xi6j80rkq45q4";
  }) { }
}:

pkgs.stdenv.mkDerivation {
  name = "hello";

  # Only the sources: a stray ./hello or hello.o from a local `make` must not
  # end up in the build, and editing this file does not change the source.
  src = builtins.path {
    name = "hello-world";
    path = ./.;
    filter = path: type: builtins.elem (baseNameOf path) [ "Makefile" "hello.c" ];
  };

  makeFlags = [ "PREFIX=$(out)" ];
}
