// Package nix reads the file formats Nix and nixpkgs leave behind: env-vars,
// .drv derivations, store paths.
//
// Everything here is pure parsing: no file is executed, no daemon is asked.
// The parsers follow the writers they read (bash's `export -p` for env-vars,
// Nix's derivations.cc for .drv files) closely enough that every value comes
// back byte for byte, and they refuse input they cannot read exactly rather
// than guess.
package nix
