//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"os"
	"runtime"
)

// errUnsupported: the sandbox is Linux's namespaces; elsewhere nbs is a
// client for Linux builders (nbs build with remote builders).
var errUnsupported = errors.New("the Nix build sandbox needs Linux (this is " + runtime.GOOS + "); enter builds that failed on a Linux builder there")

// IsChild is always false where there is no sandbox.
func IsChild() bool { return false }

// ChildMain is never reached where there is no sandbox.
func ChildMain() { os.Exit(127) }

// Enter cannot create a sandbox on this system.
func Enter(ctx context.Context, c Config) (int, string, error) {
	return 0, "", errUnsupported
}

// RunningBuilds finds no builds where there is no sandbox.
func RunningBuilds() ([]Build, error) { return nil, errUnsupported }

// Attach cannot enter a build on this system.
func Attach(ctx context.Context, c AttachConfig) (int, error) { return 0, errUnsupported }

// CanAttach is false where there is no sandbox.
func CanAttach() bool { return false }
