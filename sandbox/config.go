package sandbox

import (
	"errors"
	"log/slog"
	"os"

	"github.com/nix-build-shell/nbs/sandbox/diff"
)

// Config is one request to enter a kept build directory.
type Config struct {
	// Dir is the kept directory as the user named it (or its parent
	// where newer Nix nests it).
	Dir string
	// Command runs in the sandbox; empty means an interactive shell.
	Command []string
	// Script, when set instead of Command, is shell code run by $SHELL
	// after env-vars is sourced (nbs build --run).
	Script string
	// Keep keeps the copy after the sandbox ends.
	Keep bool
	// Entry is how /build is made (EntryCopy, EntryOverlay); EntryAuto
	// picks the cheapest the machine allows.
	Entry string
	// Drv is the failed derivation when known (nbs build); its inputs
	// make the store view.
	Drv string
	// Sandbox is the sandbox setting the build ran with as the user
	// gave it ("false" for nbs shell --no-sandbox; nbs build's
	// --option sandbox, --no-sandbox), "" when nobody said. With Nix's
	// own setting it alone decides that a build ran without Nix's
	// sandbox and is entered on the host: never the kept env-vars.
	Sandbox string
	// With are store paths (or paths inside them) added to the sandbox
	// with their closure, read-only, their bin/ directories put first
	// in PATH after env-vars is sourced: tools to debug with (gdb,
	// strace, an editor) that the build itself did not have.
	With []string

	// Progress, when set, is told how the copy of the kept directory
	// advances (see CopyProgress).
	Progress func(CopyProgress)
	// Changed, when set, is called after the sandbox has ended normally
	// if files in the copy of /build differ from the kept directory.
	Changed func(diff.Summary)

	Stdin, Stdout, Stderr *os.File
	Log                   *slog.Logger
}

// The entry modes: how /build is made. Config.Entry names one.
const (
	EntryAuto    = ""        // the cheapest the machine allows
	EntryCopy    = "copy"    // a full copy (reflinks where possible)
	EntryOverlay = "overlay" // the kernel's overlayfs
	EntryFUSE    = "fuse"    // fuse-overlayfs, served by nbs's parent
)

// ErrUnreadable marks a kept directory the caller is not allowed to
// read; `sudo nbs` is the way out.
var ErrUnreadable = errors.New("kept build directory is not readable")

// AttachConfig is one request to enter a running build.
type AttachConfig struct {
	Build Build
	// Command runs in the build's sandbox; empty means an interactive
	// shell.
	Command []string
	// With are store paths (or paths inside them) to add, with their
	// closure, to the attached command's own copy of the build's mount
	// namespace, their bin/ first in PATH; the build does not see them.
	With                  []string
	Stdin, Stdout, Stderr *os.File
	Log                   *slog.Logger
}

// ErrBuildEnded says the build ended while nbs was attached to it.
var ErrBuildEnded = errors.New("the build ended")
