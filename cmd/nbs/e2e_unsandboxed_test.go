//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestShellUnsandboxed: a build that ran with sandbox = false (common in
// Docker images used as builders) saw the host, with its build
// directory at a host path. nbs reproduces that: the copy at the
// original NIX_BUILD_TOP, the host's view otherwise, and says so. It
// knows from --no-sandbox here (nix-build ran with --option sandbox
// false; Nix's own setting says true).
func TestShellUnsandboxed(t *testing.T) {
	requireRoot(t)
	dir := unsandboxedFailure(t)
	before := treeSum(t, dir)
	host, _ := os.Hostname()
	for _, r := range runners(t) {
		t.Run(r.name, func(t *testing.T) {
			res := runNBS(t, r.user, r.env, "shell", "--no-sandbox", dir, "sh", "-c", "pwd; echo $NIX_BUILD_TOP; cat src/file.txt; echo changed > src/file.txt; test -d /usr && echo host-fs; hostname")
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

// TestShellForgedTop: a build that ran in Nix's sandbox but wrote a host
// build directory into env-vars' NIX_BUILD_TOP is still entered in the
// sandbox, with a word on how to ask for the host: the build's own word
// never takes its env-vars and code out of the sandbox. --no-sandbox,
// the user's word, does.
func TestShellForgedTop(t *testing.T) {
	dir := buildFailure(t, "forgedTop")
	const top = "/tmp/nix-build-nbs-e2e-forged-top.drv-0"
	// The directory it names exists on the host, as a build can arrange
	// by guessing where Nix keeps it.
	if err := os.Mkdir(top, 0o755); err == nil {
		t.Cleanup(func() { os.Remove(top) })
	}
	for _, r := range runners(t) {
		t.Run(r.name, func(t *testing.T) {
			res := r.shell(t, dir, "sh", "-c", `echo "$NIX_BUILD_TOP $PWD"; cat file.txt; test -d /usr && echo host-fs; hostname`)
			want := top + " " + top + "\nhello\nlocalhost\n"
			if res.code != 0 || res.stdout != want {
				t.Errorf("status %d, stdout %q; want %q (in the sandbox)\nstderr: %s", res.code, res.stdout, want, res.stderr)
			}
			if !strings.Contains(res.stderr, "names the host build directory "+top) || !strings.Contains(res.stderr, "nbs shell --no-sandbox") {
				t.Errorf("no word on the env-vars' claim:\n%s", res.stderr)
			}
			if strings.Contains(res.stderr, "ran without Nix's sandbox") {
				t.Errorf("entered as a build without the sandbox:\n%s", res.stderr)
			}
			assertCleanTmp(t, res)
		})
	}
}

// TestShellNofile: the build's shell gets the soft RLIMIT_NOFILE nbs was
// started with, not the one Go raises for nbs itself (the sandbox's
// child is forked by hand, where os/exec would have restored it).
func TestShellNofile(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	const soft = 512
	if lim.Max < soft+2 {
		t.Skipf("hard RLIMIT_NOFILE %d leaves no soft limit for Go to raise", lim.Max)
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("no prlimit (util-linux)")
	}
	dir := buildFailure(t, "fail")
	for _, r := range runners(t) {
		t.Run(r.name, func(t *testing.T) {
			res := runNBSUnder(t, []string{"prlimit", fmt.Sprintf("--nofile=%d:", soft), "--"}, r.user, r.env, "shell", dir, "sh", "-c", "ulimit -Sn")
			if res.code != 0 || strings.TrimSpace(res.stdout) != fmt.Sprint(soft) {
				t.Errorf("status %d, soft RLIMIT_NOFILE %q inside, want %d\nstderr: %s", res.code, res.stdout, soft, res.stderr)
			}
			assertCleanTmp(t, res)
		})
	}
}
