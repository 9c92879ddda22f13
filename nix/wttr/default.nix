# The assignment's second demo package: a small Rust program (a wttr.in
# client using the `curl` crate) whose build FAILS on purpose, so that there
# is a failed build to step into:
#
#   nbs build ./nix/wttr/default.nix          # fails, then you are in /build
#   nix-build --keep-failed ./nix/wttr/default.nix
#
# It fails in openssl-sys's build script ("Could not find directory of
# OpenSSL installation ... `pkg-config` could not be found"): curl links
# OpenSSL, and the derivation below gives the build neither pkg-config nor
# OpenSSL. The fix is commented in below.
#
# Needs the internet the first time: nixpkgs from GitHub, the Rust toolchain
# from cache.nixos.org and the crates listed in Cargo.lock from crates.io.
#
# nixpkgs is pinned to nixos-22.05 (head of the branch on 2022-05-31) on
# purpose: Cargo.lock pins openssl-sys 0.9.63 (the assignment's lock), which
# predates OpenSSL 3, and 22.05 is the last release whose `openssl` is 1.1,
# so that the fix below really makes the build succeed. sha256 is the NAR
# hash of the unpacked tarball; it was not computed here (no network) but
# taken from public pins of this revision and cross-checked: a fetchTarball
# pin (sha256 1d40v43x…) and a flake.lock (narHash sha256-BBeCZwZI…) agree.
# If Nix ever reports a hash mismatch for it, use the hash Nix prints.
{ pkgs ? import (builtins.fetchTarball {
    url = "https://github.com/NixOS/nixpkgs/archive/a634c8f6c1fbf9b9730e01764999666f3436f10a.tar.gz";
    sha256 = "1d40v43x972li5fg7jadxkj341li41mf2cl6vv7xi6j80rkq45q4";
  }) { }
}:

pkgs.rustPlatform.buildRustPackage {
  name = "wttr";

  # Only the Rust sources: a local ./target or ./result must not end up in
  # the build, and editing this file does not change the source.
  src = builtins.path {
    name = "wttr";
    path = ./.;
    filter = path: type:
      builtins.elem (baseNameOf path) [ "Cargo.toml" "Cargo.lock" "src" "main.rs" ];
  };

  # Each crate is fetched by the checksum Cargo.lock records for it; no
  # separate vendor hash to keep up to date.
  cargoLock.lockFile = ./Cargo.lock;

  ## Uncommenting these two lines makes the build succeed:
  # nativeBuildInputs = [ pkgs.pkg-config ];
  # buildInputs = [ pkgs.openssl ];

  meta = {
    description = "One-line weather report from wttr.in (a demo that fails to build)";
    platforms = pkgs.lib.platforms.unix;
  };
}
