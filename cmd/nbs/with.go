package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nix-build-shell/nbs/nix"
)

// errNoNixpkgs: --with named a package, but there is no <nixpkgs> to
// build it from.
var errNoNixpkgs = errors.New("<nixpkgs> is not available (not on NIX_PATH)")

// resolveWith turns the --with arguments into store paths. A path (it
// has a '/': /nix/store/…-gdb, ./result) must lead, through symlinks, to
// a store path or into one. Anything else is a nixpkgs attribute, built
// or fetched as `nix-build '<nixpkgs>' -A ATTR --no-out-link` does.
func resolveWith(ctx context.Context, args []string, build func(ctx context.Context, attr string) ([]string, error)) ([]string, error) {
	var out []string
	for _, a := range args {
		if a == "" {
			return nil, fmt.Errorf("--with: empty argument")
		}
		if strings.Contains(a, "/") {
			p, err := filepath.EvalSymlinks(a)
			if err != nil {
				return nil, fmt.Errorf("--with %s: %w", a, err)
			}
			if p, err = filepath.Abs(p); err != nil {
				return nil, fmt.Errorf("--with %s: %w", a, err)
			}
			if !strings.HasPrefix(p, nix.StoreDir+"/") {
				return nil, fmt.Errorf("--with %s: %s is not in %s; the sandbox shows only the store", a, p, nix.StoreDir)
			}
			out = append(out, p)
			continue
		}
		paths, err := build(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("--with %s: %w", a, err)
		}
		out = append(out, paths...)
	}
	return out, nil
}

// nixpkgsBuild builds attr of <nixpkgs> (substituting it when a cache has
// it) and returns its output paths.
func nixpkgsBuild(ctx context.Context, attr string) ([]string, error) {
	if err := exec.CommandContext(ctx, "nix-instantiate", "--find-file", "nixpkgs").Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, errNoNixpkgs
		}
		return nil, fmt.Errorf("find <nixpkgs>: %w", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nix-build", "<nixpkgs>", "-A", attr, "--no-out-link")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("nix-build '<nixpkgs>' -A %s: %w: %s", attr, err, lastLine(stderr.String()))
	}
	paths := strings.Fields(stdout.String())
	if len(paths) == 0 {
		return nil, fmt.Errorf("nix-build '<nixpkgs>' -A %s printed no store path", attr)
	}
	return paths, nil
}

// lastLine is the last non-empty line of s: nix-build's error.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// withHint says what to do about a --with argument that could not be
// resolved.
func withHint(err error) string {
	if errors.Is(err, errNoNixpkgs) {
		return "pass a store path instead (--with /nix/store/…-gdb, or --with ./result), or put nixpkgs on NIX_PATH"
	}
	return ""
}

// prepareShell finishes what nbs shell was asked: with --last it picks
// the newest kept directory (and says which), and it resolves the --with
// arguments to store paths.
func prepareShell(ctx context.Context, opts *ShellOptions, search nix.KeptSearch, build func(context.Context, string) ([]string, error)) ([]string, error) {
	if opts.Last {
		k, err := lastKept(search)
		if err != nil {
			return nil, &hintError{fmt.Errorf("shell --last: %w", err), "nix-build --keep-failed (or nbs build) keeps the directory of a failed build"}
		}
		name := k.Name
		if name == "" {
			name = "the newest kept build directory"
		}
		fmt.Fprintf(opts.f.Stderr, "nbs: entering %s (%s ago): %s\n", oneLine(name), age(time.Now(), k.Time), oneLine(k.Dir))
		opts.Dir = k.Dir
	}
	with, err := resolveWith(ctx, opts.With, build)
	if err != nil {
		if h := withHint(err); h != "" {
			return nil, &hintError{err, h}
		}
		return nil, err
	}
	return with, nil
}
