package nix

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// FindDerivation finds the derivation that produced a kept build: the
// .drv in the store named NAME.drv one of whose outputs is out. A failed
// build's output is not valid, so `nix-store --query --deriver` cannot
// tell; the derivation itself is still in the store.
func FindDerivation(storeDir, name, out string) (string, *Derivation, error) {
	matches, err := filepath.Glob(filepath.Join(storeDir, "*-"+name+".drv"))
	if err != nil {
		return "", nil, fmt.Errorf("find derivation of %s: %w", out, err)
	}
	for _, m := range matches {
		d, err := ReadDerivation(m)
		if err != nil {
			continue
		}
		for _, o := range d.Outputs {
			if o.Path == out {
				return m, d, nil
			}
		}
	}
	return "", nil, fmt.Errorf("find derivation of %s: no %s/*-%s.drv has it as an output", out, storeDir, name)
}

// InputPaths are the store paths a build of d may see before their
// closure is taken: its input sources and the outputs it uses of its
// input derivations (read from those .drv files).
func (d *Derivation) InputPaths() ([]string, error) {
	paths := append([]string{}, d.InputSrcs...)
	for drv, outs := range d.InputDrvs {
		in, err := ReadDerivation(drv)
		if err != nil {
			return nil, fmt.Errorf("read input derivation: %w", err)
		}
		for _, name := range outs {
			found := false
			for _, o := range in.Outputs {
				if o.Name == name {
					paths = append(paths, o.Path)
					found = true
				}
			}
			if !found {
				return nil, fmt.Errorf("input derivation %s has no output %q", drv, name)
			}
		}
	}
	sort.Strings(paths)
	return paths, nil
}

// Requisites is the closure of paths: `nix-store --query --requisites`.
// Paths that are not valid store paths (a failed build's own outputs)
// must not be passed.
func Requisites(ctx context.Context, paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nix-store", append([]string{"--query", "--requisites"}, paths...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("nix-store --query --requisites: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var closure []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			closure = append(closure, l)
		}
	}
	sort.Strings(closure)
	return closure, nil
}

// ExistingStorePaths keeps the paths of ps that exist on this machine,
// deduplicated and sorted.
func ExistingStorePaths(ps []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range ps {
		// .lock and .chroot are Nix's own files next to store paths,
		// never valid paths: a build could name them in env-vars to
		// make the closure query fail.
		if seen[p] || !IsStorePath(p) || strings.HasSuffix(p, ".lock") || strings.HasSuffix(p, ".chroot") {
			continue
		}
		seen[p] = true
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
