//go:build linux

package main

import (
	"os"
	"strings"
	"testing"
)

// TestShellUnsandboxed: a build that ran with sandbox = false (common in
// Docker images used as builders) saw the host, with its build
// directory at a host path. nbs reproduces that: the copy at the
// original NIX_BUILD_TOP, the host's view otherwise, and says so.
func TestShellUnsandboxed(t *testing.T) {
	requireRoot(t)
	dir := unsandboxedFailure(t)
	before := treeSum(t, dir)
	host, _ := os.Hostname()
	for _, r := range runners(t) {
		t.Run(r.name, func(t *testing.T) {
			res := r.shell(t, dir, "sh", "-c", "pwd; echo $NIX_BUILD_TOP; cat src/file.txt; echo changed > src/file.txt; test -d /usr && echo host-fs; hostname")
			want := dir + "\n" + dir + "\nhello\nhost-fs\n" + host + "\n"
			if res.code != 0 || res.stdout != want {
				t.Errorf("status %d, stdout %q; want %q\nstderr: %s", res.code, res.stdout, want, res.stderr)
			}
			if !strings.Contains(res.stderr, "ran without Nix's sandbox") {
				t.Errorf("no word that the build was not sandboxed: %s", res.stderr)
			}
			if after := treeSum(t, dir); after != before {
				t.Error("the kept directory changed")
			}
			assertCleanTmp(t, res)
		})
	}
}
