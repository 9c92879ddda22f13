//go:build !linux

package sandbox

import "github.com/nix-build-shell/nbs/nix"

// FindGarbage finds nothing where Nix keeps no build directories of
// nbs's (nbs is a client only here).
func FindGarbage(nix.KeptSearch, []string, []string) ([]Garbage, error) {
	return nil, errUnsupported
}

// RemoveGarbage cannot run here.
func RemoveGarbage(Garbage) error { return errUnsupported }
