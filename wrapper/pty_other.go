//go:build !linux

package wrapper

import (
	"errors"
	"os"
)

// Elsewhere (darwin, as a client of remote builders) nix-build's stderr is
// a pipe: the log stays unchanged but without Nix's colours and progress bar.

func openPTY() (master, slave *os.File, err error) { return nil, nil, errors.ErrUnsupported }
