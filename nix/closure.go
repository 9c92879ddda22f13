package nix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// FindDerivation finds the derivation that produced a kept build: the
// .drv in the store named NAME.drv one of whose outputs is out. A failed
// build's output is not valid, so `nix-store --query --deriver` cannot
// tell; the derivation itself is still in the store. The user's cache
// (UserCache) remembers the answer.
func FindDerivation(storeDir, name, out string) (string, *Derivation, error) {
	return UserCache().FindDerivation(storeDir, name, out)
}

// deriverEntry is the cache file naming the derivation Drv of output Out.
type deriverEntry struct {
	Format   int
	Out, Drv string
}

const deriverPrefix = "deriver-"

// FindDerivation is FindDerivation with the cache c. A store may hold
// thousands of derivations of one name (every revision of nixpkgs
// entered): a cached answer is read and checked instead, and the search
// parses only the files that name out.
func (c *Cache) FindDerivation(storeDir, name, out string) (string, *Derivation, error) {
	file := deriverPrefix + cacheKey(out)
	var e deriverEntry
	if c.load(file, &e) == nil && e.Out == out && filepath.Dir(e.Drv) == storeDir && strings.HasSuffix(e.Drv, "-"+name+".drv") {
		if d, err := ReadDerivation(e.Drv); err == nil && d.hasOutput(out) {
			c.touch(file)
			return e.Drv, d, nil
		}
	}
	matches, err := filepath.Glob(filepath.Join(storeDir, "*-"+name+".drv"))
	if err != nil {
		return "", nil, fmt.Errorf("find derivation of %s: %w", out, err)
	}
	quoted := []byte(`"` + out + `"`)
	for _, m := range matches {
		data, err := readFile(m)
		if err != nil || !bytes.Contains(data, quoted) {
			continue
		}
		d, err := parseDerivation(data)
		if err != nil || !d.hasOutput(out) {
			continue
		}
		if c.dir != "" && c.store(file, deriverEntry{Format: cacheFormat, Out: out, Drv: m}) == nil {
			c.prune(deriverPrefix, maxCached)
		}
		return m, d, nil
	}
	return "", nil, fmt.Errorf("find derivation of %s: no %s/*-%s.drv has it as an output", out, storeDir, name)
}

func (d *Derivation) hasOutput(path string) bool {
	for _, o := range d.Outputs {
		if o.Path == path {
			return true
		}
	}
	return false
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

// Requisites is the closure of paths, `nix-store --query --requisites`,
// from the user's cache (UserCache) when it holds it; from says where it
// came from, for --debug. Paths that are not valid store paths (a failed
// build's own outputs) must not be passed.
func Requisites(ctx context.Context, paths []string) (closure []string, from string, err error) {
	return UserCache().Requisites(ctx, paths)
}

// closureEntry is the cache file of the closure of Roots.
type closureEntry struct {
	Format  int
	Roots   []string
	Closure []string
}

const closurePrefix = "closure-"

// Requisites is the closure of paths from c, or from nix-store, which
// it then stores in c. A store path's references never change, so a
// cached closure holds as long as its paths exist; a garbage collection
// may have removed some, which is checked (one lstat each).
func (c *Cache) Requisites(ctx context.Context, paths []string) (closure []string, from string, err error) {
	if len(paths) == 0 {
		return nil, "no store paths", nil
	}
	roots := slices.Clone(paths)
	sort.Strings(roots)
	roots = slices.Compact(roots)
	name := closurePrefix + cacheKey(strings.Join(roots, "\n"))
	var e closureEntry
	miss := c.load(name, &e)
	if miss == nil {
		if miss = e.check(roots, c.exists); miss == nil {
			c.touch(name)
			return e.Closure, "cache " + c.path(name), nil
		}
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nix-store", append([]string{"--query", "--requisites"}, roots...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("nix-store --query --requisites: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			closure = append(closure, l)
		}
	}
	sort.Strings(closure)
	from = "nix-store --query --requisites (cache: " + miss.Error() + ")"
	if c.dir != "" {
		if err := c.store(name, closureEntry{Format: cacheFormat, Roots: roots, Closure: closure}); err != nil {
			from += " (not cached: " + err.Error() + ")"
		} else {
			c.prune(closurePrefix, maxCached)
		}
	}
	return closure, from, nil
}

// check says why e is not the closure of roots here (nil when it is): it
// must be of those roots, hold them, be sorted store paths, and every
// path must still exist.
func (e *closureEntry) check(roots []string, exists func(string) bool) error {
	if !slices.Equal(e.Roots, roots) {
		return errors.New("another set of paths")
	}
	if !sort.StringsAreSorted(e.Closure) {
		return errors.New("not sorted")
	}
	for _, r := range roots {
		if _, ok := slices.BinarySearch(e.Closure, r); !ok {
			return fmt.Errorf("%s is missing from its own closure", r)
		}
	}
	for _, p := range e.Closure {
		if !IsStorePath(p) {
			return fmt.Errorf("%q is not a store path", p)
		}
		if !exists(p) {
			return fmt.Errorf("%s is gone", p)
		}
	}
	return nil
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

// Basic is d as Nix hands it to a remote builder: a BasicDerivation,
// with no input derivations and as input sources its own plus the
// outputs it uses of its input derivations (InputPaths). The builder has
// those paths, which Nix copied there, but not the .drv files: Nix 2.8's
// build hook (src/build-remote/build-remote.cc, main) sets
// drv.inputSrcs to the input closure and sends the rest of the
// derivation unchanged with Store::buildDerivation, which the legacy
// ssh store writes over `nix-store --serve` (src/libstore/
// legacy-ssh-store.cc, LegacySSHStore::buildDerivation). Basic names the
// direct inputs only, not their closure as Nix's hook does: the builder
// computes the closure from its own store, where the inputs' references
// are registered, and the replay's sandbox shows that. An input whose
// output path is not known before its build (content-addressed) cannot
// be resolved here and is an error.
func (d *Derivation) Basic() (*Derivation, error) {
	inputs, err := d.InputPaths()
	if err != nil {
		return nil, err
	}
	for _, p := range inputs {
		if p == "" {
			return nil, errors.New("an input derivation's output has no path before its build (content-addressed): it cannot be named to another machine")
		}
	}
	b := *d
	b.InputDrvs = map[string][]string{}
	b.InputSrcs = slices.Compact(inputs)
	return &b, nil
}
