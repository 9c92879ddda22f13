package sandbox

import (
	"log/slog"
	"os"
)

// ReplayConfig is one request to run a failed derivation again in the
// sandbox, as the calling user, and stop at its failure.
type ReplayConfig struct {
	// Drv is the derivation (.drv) to replay.
	Drv string
	// Break stops a stdenv build before this phase instead of at the
	// failure.
	Break string
	// Script is shell code evaluated in the stopped builder's state
	// (--run); Command, when set instead, is a command and its
	// arguments run there. Neither: an interactive shell.
	Script  string
	Command []string
	// KeptDir is the kept build directory of the original, when known:
	// its env-vars, when readable, only raises a note (ranWithoutSandbox).
	KeptDir string
	// Sandbox is the sandbox setting the original build ran with, when
	// its command line gave one ("true", "false", "relaxed"); "" takes
	// Nix's configured one.
	Sandbox string

	// Started, when set, is called once the inputs are there and the
	// sandbox is about to start (for the "replaying" line).
	Started func()
	// Entering, when set, is called before a shell enters the replayed
	// /build of a builder that failed (with exit) without stopping.
	Entering func(exit int)

	Stdin, Stdout, Stderr *os.File
	Log                   *slog.Logger
}

// ReplayOutcome says what the replay did.
type ReplayOutcome struct {
	// Stopped: the replayed bash builder stopped in its own shell, at
	// a failure (Phase is the stdenv phase, Status the failing
	// command's status) or before --break's phase (Break).
	Stopped bool
	Break   bool
	Phase   string
	Status  int
	// BuilderExit is the builder's own exit status when it did not
	// stop (0: the replay succeeded); Entered says that nbs then
	// entered the replayed /build as the failure left it.
	BuilderExit int
	Entered     bool
}
