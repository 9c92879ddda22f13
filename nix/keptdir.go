package nix

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNotKeptDir means a directory holds no env-vars where a kept build
// directory would.
var ErrNotKeptDir = errors.New("not a kept Nix build directory")

// FindBuildDir returns the directory holding env-vars for a directory a user
// passed in: dir itself for a flat kept directory (Nix ≤ 2.23, Lix ≤ 2.93),
// else dir/build or dir/b. Nix 2.24+ puts the build's own directory in
// <top>/build (the CVE-2024-38531 fix; from 2.30 that is
// /nix/var/nix/builds/nix-PID-N/build), and Lix 2.94+ uses
// /nix/var/nix/b/<id>/b but prints the outer directory.
//
// env-vars only has to exist: recent nixpkgs creates it 0600 for the build
// user, so the caller may well be unable to read it. That is a problem for
// whoever reads it next, not a reason to call the directory something else.
//
// An error names the path involved: dir itself when it is missing, not a
// directory or not searchable (the os error is wrapped, so errors.Is works
// with fs.ErrNotExist, fs.ErrPermission and syscall.ENOTDIR), or dir with
// ErrNotKeptDir when there is no env-vars in any of the places.
func FindBuildDir(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("find build directory: %w", err)
	}
	if !fi.IsDir() {
		// What open(O_DIRECTORY) would say, so callers can test for
		// syscall.ENOTDIR like for the other os errors.
		return "", fmt.Errorf("find build directory: %w",
			&fs.PathError{Op: "open", Path: dir, Err: syscall.ENOTDIR})
	}
	for _, cand := range []string{dir, filepath.Join(dir, "build"), filepath.Join(dir, "b")} {
		found, err := hasEnvVars(cand)
		if err != nil {
			return "", err
		}
		if found {
			return cand, nil
		}
	}
	return "", fmt.Errorf("find build directory: %s has no env-vars, build/env-vars or b/env-vars: %w", dir, ErrNotKeptDir)
}

// hasEnvVars reports whether dir/env-vars exists. A missing dir counts as no,
// since build/ and b/ are only candidates; any other failure (EACCES on a
// 0700 directory of another user, above all) is reported, because guessing
// past it would blame the wrong thing.
func hasEnvVars(dir string) (bool, error) {
	_, err := os.Lstat(filepath.Join(dir, "env-vars"))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return false, nil
	}
	return false, fmt.Errorf("find build directory: %w", err)
}
