package nix

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"syscall"
)

// maxFileSize bounds what ReadEnvVars and ReadDerivation read. Real env-vars
// files are a few KiB and the largest derivations in nixpkgs a few MiB;
// anything bigger is not what it claims to be, and reading it would only
// cost memory.
const maxFileSize = 64 << 20

// ErrTooLarge is returned (wrapped) for input over 64 MiB.
var ErrTooLarge = errors.New("input larger than 64 MiB")

// readLimited reads all of r but stops one byte past the limit, so a huge or
// endless input costs at most 64 MiB before it is refused.
func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, ErrTooLarge
	}
	return data, nil
}

// readFile reads a file of at most 64 MiB. A regular file that is larger
// is refused from its size alone. Errors name path.
//
// The files nbs reads come from kept build directories, which a build
// wrote: the last component is not followed if it is a symlink (nbs may
// run as root, and env-vars -> /etc/shadow must not be read), and
// anything but a regular file is refused without blocking (a FIFO named
// env-vars would hang a plain open).
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link; nbs does not follow links in a kept build directory", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("%s: %w", path, ErrTooLarge)
	}
	data, err := readLimited(f)
	if errors.Is(err, ErrTooLarge) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, err
}

// LazyRegexp compiles expr on first use: every nbs process, the
// sandbox's child too, would otherwise compile each pattern (of Nix's
// names and log lines, here and in wrapper) at start-up, before it
// knows whether it needs any.
func LazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
