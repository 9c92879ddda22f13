//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestShellUnsandboxed: a build that ran with sandbox = false (common in
// Docker images used as builders) saw the host, with its build
// directory at a host path. nbs reproduces that: the copy at the
// original NIX_BUILD_TOP, the host's view otherwise, and says so.
func TestShellUnsandboxed(t *testing.T) {
	requireNix(t)
	requireRoot(t)
	cmd := exec.Command("nix-build", "--no-out-link", "--keep-failed", "--option", "sandbox", "false",
		e2eNix(t), "-A", "fail", "--argstr", "nonce", fmt.Sprintf("unsandboxed-%d", time.Now().UnixNano()))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if cmd.Run() == nil {
		t.Fatal("the build succeeded")
	}
	m := keptRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no kept directory:\n%s", stderr.String())
	}
	dir := m[1]
	t.Cleanup(func() { os.RemoveAll(dir) })
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
