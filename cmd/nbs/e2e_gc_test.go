//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nix-build-shell/nbs/nix"
)

// The gc tests name their directories: nbs gc without DIR would remove
// every kept directory on the machine, other tests' among them.

// TestGCRoot: root removes a kept directory of Nix's build user, after
// a dry run that removes nothing, and leaves one an nbs session is in.
func TestGCRoot(t *testing.T) {
	requireRoot(t)
	requireUserNS(t)
	dir := buildFailure(t, "fail")
	// gc names what it removes: the directory Nix created, which holds
	// the build's own from Nix 2.30 on (nix-PID-N/build).
	top := dir
	if b, ok := nix.ParseBuildDir(dir); ok {
		top = b.Top
	}
	res := runNBS(t, nil, nil, "gc", "--dry-run", dir)
	if res.code != 0 || !strings.Contains(res.stdout, "would remove") || !strings.Contains(res.stdout, top) {
		t.Fatalf("gc --dry-run: status %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("gc --dry-run removed %s: %v", dir, err)
	}
	res = runNBS(t, nil, nil, "gc", dir)
	if res.code != 0 || !strings.Contains(res.stdout, "removed") || !strings.Contains(res.stderr, "nbs: freed ") {
		t.Fatalf("gc: status %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("gc left %s: %v", dir, err)
	}

	// An nbs session in it: left alone until the session ends.
	busy := buildFailure(t, "fail")
	session := exec.Command(nbsBin, "shell", busy, "sh", "-c", "echo started; exec sleep 600")
	session.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + privateTmp(t), "HOME=/nonexistent"}
	waitStarted(t, session)
	res = runNBS(t, nil, nil, "gc", busy)
	if res.code != 0 || !strings.Contains(res.stdout, "an nbs session has entered it") {
		t.Errorf("gc of a directory in use: status %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(busy, "env-vars")); err != nil {
		t.Errorf("gc removed a directory in use: %v", err)
	}
	session.Process.Signal(syscall.SIGTERM)
	session.Wait()
	res = runNBS(t, nil, nil, "gc", busy)
	if _, err := os.Lstat(busy); res.code != 0 || !os.IsNotExist(err) {
		t.Errorf("gc after the session: status %d, %v\n%s\n%s", res.code, err, res.stdout, res.stderr)
	}
}

// TestGCRunningBuild: the directory of a build still running is never
// removed (its builder is inside it, Nix holds its output's lock).
func TestGCRunningBuild(t *testing.T) {
	requireRoot(t)
	requireNix(t)
	nonce := fmt.Sprintf("gc-running-%d", time.Now().UnixNano())
	build := exec.Command("nix-build", "--no-out-link", "--keep-failed", e2eNix(t), "-A", "slow", "--argstr", "nonce", nonce)
	if err := build.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		build.Process.Signal(syscall.SIGINT)
		build.Wait()
	}()
	// The slow build writes env-vars, then sleeps: find its directory
	// by the nonce in it (other tests build the same name), where this
	// Nix puts it: /tmp/nix-build-NAME.drv-N up to 2.29,
	// /nix/var/nix/builds/nix-PID-N holding build/ from 2.30.
	var dir, buildDir string
	for deadline := time.Now().Add(5 * time.Minute); dir == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		named, _ := filepath.Glob("/tmp/nix-build-nbs-e2e-slow.drv-*")
		numbered, _ := filepath.Glob("/nix/var/nix/builds/nix-*")
		for _, m := range append(named, numbered...) {
			b, err := nix.FindBuildDir(m)
			if err != nil {
				continue
			}
			if env, err := os.ReadFile(filepath.Join(b, "env-vars")); err == nil && strings.Contains(string(env), nonce) {
				dir, buildDir = m, b
			}
		}
	}
	if dir == "" {
		t.Fatal("the slow build's directory never appeared in /tmp or /nix/var/nix/builds")
	}
	t.Cleanup(func() { removeKept(buildDir) })
	res := runNBS(t, nil, nil, "gc", dir)
	if res.code != 0 || !strings.Contains(res.stdout, "in use: ") {
		t.Errorf("gc of a running build's directory: status %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(buildDir, "env-vars")); err != nil {
		t.Errorf("gc removed a running build's directory: %v", err)
	}
}

// TestGCUser: a user removes their own kept copy, and is told to use
// sudo for the build user's directory, which stays.
func TestGCUser(t *testing.T) {
	u := unprivileged(t)
	requireUserNS(t)
	dir := buildFailure(t, "fail")
	res := runNBS(t, u, nil, "gc", dir)
	if res.code != 1 || !strings.Contains(res.stderr, "sudo nbs gc "+dir) || !strings.Contains(res.stdout, "needs root") {
		t.Errorf("gc of the build user's directory: status %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "env-vars")); err != nil {
		t.Fatalf("gc as %s removed %s: %v", u.name, dir, err)
	}

	res = runNBS(t, u, nil, "shell", "--keep", dir, "true")
	kept := keptPath(res.stderr)
	if res.code != 0 || kept == "" {
		t.Fatalf("shell --keep: status %d: %s", res.code, res.stderr)
	}
	res = runNBS(t, u, nil, "gc", kept)
	if res.code != 0 || !strings.Contains(res.stdout, "removed") || !strings.Contains(res.stdout, "copy of ") {
		t.Errorf("gc of own kept copy: status %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if _, err := os.Lstat(keptWorkDir(kept)); !os.IsNotExist(err) {
		t.Errorf("gc left the kept copy's work directory: %v", err)
	}

	// A directory that merely holds an env-vars is not Nix's.
	project := filepath.Join(privateTmp(t), "project")
	os.Mkdir(project, 0o755)
	os.WriteFile(filepath.Join(project, "env-vars"), []byte("declare -x name=\"p\"\n"), 0o644)
	os.Chown(project, u.uid, u.gid)
	res = runNBS(t, u, nil, "gc", project)
	if _, err := os.Stat(filepath.Join(project, "env-vars")); res.code != 1 || err != nil {
		t.Errorf("gc of a project directory: status %d, %v: %s", res.code, err, res.stderr)
	}

	res = runNBS(t, u, nil, "gc", "/nonexistent/nix-build-x.drv-0")
	if res.code != 1 || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 || !strings.Contains(res.stderr, "/nonexistent/nix-build-x.drv-0") {
		t.Errorf("gc of a missing directory: status %d, stderr %q", res.code, res.stderr)
	}
}

// waitStarted starts cmd and waits until it prints "started".
func waitStarted(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "started\n" {
		t.Fatalf("%s: read %q, %v", strings.Join(cmd.Args, " "), line, err)
	}
}
