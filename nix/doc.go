// Package nix knows what Nix and nixpkgs leave behind and asks Nix what
// nbs must know of it: the formats (env-vars, .drv derivations, nix.conf
// settings, store paths) and the layouts of kept build directories for
// every Nix and Lix release nbs knows (keptdir.go; where they are
// searched, kept.go).
//
// The parsers execute no file and ask no daemon. They follow the writers
// they read (bash's `export -p` for env-vars, Nix's derivations.cc for
// .drv files) closely enough that every value comes back byte for byte,
// and they refuse input they cannot read exactly rather than guess.
//
// Two functions run Nix. ReadHost runs `nix --version` and `nix config
// show` (`nix show-config` before 2.20), which read this machine's
// configuration and open no store (src/nix/show-config.cc: CmdShowConfig
// is a Command, not a StoreCommand), so no daemon is asked. Requisites
// runs `nix-store --query --requisites`, which opens the store like any
// nix-store: for a user who cannot write the store's database (anyone
// but root on a multi-user install) that store is the nix-daemon's.
// Both run only when the user's Cache (cache.go) cannot answer for Nix.
package nix
