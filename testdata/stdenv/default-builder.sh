# nbs's stand-in for nixpkgs' pkgs/stdenv/generic/default-builder.sh:
# the builder script of a derivation without one of its own.
genericBuild
