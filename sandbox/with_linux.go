package sandbox

import (
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
)

// toolPaths turns Config.With into the store paths to add: each entry
// must be a store path or a path inside one (…-gdb/bin/gdb) that exists
// here. The sandbox shows nothing of the host outside the store, so
// nothing else could work inside.
func toolPaths(with []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, w := range with {
		p := path.Clean(w)
		if strings.HasPrefix(p, nix.StoreDir+"/") {
			p = nix.StorePathOf(p)
		}
		if !nix.IsStorePath(p) {
			return nil, fmt.Errorf("add %s to the sandbox: not a path in %s", w, nix.StoreDir)
		}
		if _, err := os.Lstat(p); err != nil {
			return nil, fmt.Errorf("add %s to the sandbox: %w", w, err)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// toolsPATH is the shell code that puts the bin/ directories of the tool
// store paths first in PATH; "" when none has one. It runs after env-vars
// is sourced, which sets PATH.
func toolsPATH(paths []string) string {
	var bins []string
	for _, p := range paths {
		if fi, err := os.Stat(p + "/bin"); err == nil && fi.IsDir() {
			bins = append(bins, p+"/bin")
		}
	}
	if len(bins) == 0 {
		return ""
	}
	return "export PATH=" + shquote.Quote(strings.Join(bins, ":")) + `"${PATH:+:$PATH}"`
}
