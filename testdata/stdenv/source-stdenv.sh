# nbs's stand-in for nixpkgs' pkgs/stdenv/generic/source-stdenv.sh, the
# first file mkDerivation's builder (bash -e) runs: the structured
# attributes, then stdenv's setup, then the builder script ($1).
# nixpkgs' reads .attrs.sh only from $NIX_ATTRS_SH_FILE, which Nix
# before 2.13.4 (and 2.14) sets to the build directory's host path
# (NixOS/nix#6736), so that on those versions a structured-attrs build
# fails before setup. This one, like many of nixpkgs' own builders,
# also takes .attrs.sh from the build directory, so that such builds
# get as far as their phases on Nix 2.8 too.
for __attrsFile in "${NIX_ATTRS_SH_FILE-}" .attrs.sh; do
    if [ -e "$__attrsFile" ]; then
        . "$__attrsFile"
        break
    fi
done
unset __attrsFile
source "$stdenv/setup"
source "$1"
