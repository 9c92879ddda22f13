// Package remote enters a failed build's directory kept on a remote
// builder, over ssh, the way Nix reached that builder.
//
// Nix keeps a remote build's directory on the builder, so nbs goes there
// the way Nix went: `ssh HOST -x -a $NIX_SSHOPTS -i KEY …` (Nix 2.8's
// SSHMaster), and runs nbs on the builder. Parse reads a builder URI
// (ssh://, ssh-ng:// or a bare host) into a Target; Enter holds the
// session, which enters a kept directory (nbs shell) or replays a failed
// derivation (nbs replay, Options.Replay). The conversation with the
// builder is four ssh commands, each a POSIX sh script:
//
//	nbs                                   builder
//	 |-- probe: mktemp -d, command -v nbs, uname -sm --->|  (dir=, nbs=, uname=)
//	 |   (a replay: the derivation on stdin, to DIR) --->|  (shipped=)
//	 |-- copy (no nbs there): cat > DIR/nbs ------------>|  this binary on stdin
//	 |-- run: echo $$ > DIR/pid; exec nbs shell|replay ->|  -tt with a terminal, pipes without
//	 |-- cleanup: end DIR/pid's nbs if alive; rm -rf DIR>|  always, also after errors and signals
//
// The remote nbs makes its own pty, copies the kept directory to a private
// place and removes the copy, exactly as locally; the kept directory itself
// is never changed. A replay's derivation lives in DIR only: the builder
// has the inputs but not the .drv (see Replay), and nothing is written to
// its store. The remote exit status comes back through ssh.
//
// The package prints nothing itself: warnings go to the caller's logger,
// and errors a user can act on are an *Error carrying the hint.
package remote
