package nix

import (
	"errors"
	"fmt"
	"io"
	"os"
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
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > maxFileSize {
		return nil, fmt.Errorf("%s: %w", path, ErrTooLarge)
	}
	data, err := readLimited(f)
	if errors.Is(err, ErrTooLarge) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, err
}
