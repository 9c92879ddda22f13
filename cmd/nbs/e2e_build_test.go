//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildRunners: nbs build as root (nix-build builds locally) and as the
// unprivileged user (nix-build talks to the nix-daemon .ci/setup-host
// started).
func buildRunners(t *testing.T) []runner {
	t.Helper()
	requireNix(t)
	requireUserNS(t)
	u := unprivileged(t)
	if _, err := os.Stat("/nix/var/nix/daemon-socket/socket"); err != nil {
		missing(t, "no nix-daemon socket: %v", err)
	}
	return []runner{{name: "root"}, {name: "user", user: u}}
}

func nonce(t *testing.T) string {
	return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
}

// runBuild runs nbs build in a fresh working directory that u may write.
func runBuild(t *testing.T, u *testUser, args ...string) (result, string) {
	t.Helper()
	wd, err := os.MkdirTemp("", "nbs-e2e-wd-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(wd, 0o777)
	t.Cleanup(func() { os.RemoveAll(wd) })
	old, _ := os.Getwd()
	os.Chdir(wd)
	defer os.Chdir(old)
	return runNBS(t, u, nil, append([]string{"build"}, args...)...), wd
}

// nixFailed: nix-build exits 100 for a failed build, 1 when it talked
// to a daemon (Nix 2.8), and nbs passes that on.
func nixFailed(code int) bool { return code == 100 || code == 1 }

func keptDirsIn(stderr string) []string {
	var dirs []string
	for _, m := range keptRE.FindAllStringSubmatch(stderr, -1) {
		dirs = append(dirs, m[1])
	}
	return dirs
}

func cleanupKept(t *testing.T, stderr string) {
	t.Cleanup(func() {
		for _, d := range keptDirsIn(stderr) {
			removeKept(d)
		}
	})
}

func TestBuild(t *testing.T) {
	e2e := e2eNix(t)
	for _, r := range buildRunners(t) {
		t.Run(r.name, func(t *testing.T) {
			t.Run("run in the failed build", func(t *testing.T) {
				res, _ := runBuild(t, r.user, "--run", "cat /build/src/file.txt; id -u; hostname; exit 7", e2e, "-A", "fail", "--argstr", "nonce", nonce(t))
				cleanupKept(t, res.stderr)
				if res.code != 7 || res.stdout != "hello\n1000\nlocalhost\n" {
					t.Errorf("status %d, stdout %q; want 7 and the build's file, 1000, localhost\nstderr: %s", res.code, res.stdout, res.stderr)
				}
				// The build's own log lines come through.
				if !strings.Contains(res.stderr, "nbs-e2e: failing on purpose") || !strings.Contains(res.stderr, "nbs-e2e-fail failed (builder exit 3)") {
					t.Errorf("log or message missing:\n%s", res.stderr)
				}
				// As root, nix-build keeps its build directory in our
				// TMPDIR too; nbs's own copies must be gone.
				for _, e := range tmpEntries(res.tmp) {
					if strings.HasPrefix(e, "nbs-") {
						t.Errorf("nbs left %s in TMPDIR", e)
					}
				}
			})
			t.Run("-A selects", func(t *testing.T) {
				res, _ := runBuild(t, r.user, "--run", "cat second.txt", e2e, "-A", "fail2", "--argstr", "nonce", nonce(t))
				cleanupKept(t, res.stderr)
				if res.stdout != "second\n" || res.code != 0 {
					t.Errorf("status %d, stdout %q; want fail2's file\nstderr: %s", res.code, res.stdout, res.stderr)
				}
			})
			t.Run("no terminal", func(t *testing.T) {
				res, _ := runBuild(t, r.user, e2e, "-A", "fail", "--argstr", "nonce", nonce(t))
				cleanupKept(t, res.stderr)
				dirs := keptDirsIn(res.stderr)
				if !nixFailed(res.code) || len(dirs) != 1 || !strings.Contains(res.stderr, "enter it with: nbs shell "+dirs[0]) {
					t.Errorf("status %d; want nix-build's 100 and the nbs shell command\nstderr: %s", res.code, res.stderr)
				}
				// The printed command works as printed.
				if len(dirs) == 1 {
					sh := runNBS(t, r.user, nil, "shell", dirs[0], "cat", "src/file.txt")
					if sh.stdout != "hello\n" {
						t.Errorf("printed command: %q %s", sh.stdout, sh.stderr)
					}
				}
			})
			t.Run("keep-going lists all", func(t *testing.T) {
				res, _ := runBuild(t, r.user, "--no-shell", "--keep-going", e2e, "-A", "fail", "-A", "fail2", "--argstr", "nonce", nonce(t))
				cleanupKept(t, res.stderr)
				if !nixFailed(res.code) || strings.Count(res.stderr, "enter it with: nbs shell ") != 2 ||
					!strings.Contains(res.stderr, "nbs-e2e-fail2 failed") || !strings.Contains(res.stderr, "nbs-e2e-fail failed") {
					t.Errorf("status %d; want both failures listed\nstderr: %s", res.code, res.stderr)
				}
			})
			t.Run("success", func(t *testing.T) {
				res, wd := runBuild(t, r.user, e2e, "-A", "ok", "--argstr", "nonce", nonce(t))
				link, err := os.Readlink(filepath.Join(wd, "result"))
				if res.code != 0 || !strings.HasPrefix(res.stdout, "/nix/store/") || err != nil || strings.TrimSpace(res.stdout) != link {
					t.Errorf("status %d, stdout %q, result -> %q (%v)\nstderr: %s", res.code, res.stdout, link, err, res.stderr)
				}
				if strings.Contains(res.stderr, "nbs:") {
					t.Errorf("nbs spoke on success: %s", res.stderr)
				}
			})
			t.Run("evaluation error", func(t *testing.T) {
				res, _ := runBuild(t, r.user, "/nonexistent/default.nix")
				if res.code == 0 || !strings.Contains(res.stderr, "/nonexistent/default.nix") || strings.Contains(res.stderr, "entering") {
					t.Errorf("status %d, stderr %s", res.code, res.stderr)
				}
			})
		})
	}
}

// TestBuildInterrupt: Ctrl-C (SIGINT) during a slow build stops
// nix-build; nbs exits 130 quickly and enters no sandbox.
func TestBuildInterrupt(t *testing.T) {
	requireNix(t)
	wd := t.TempDir()
	tmp, _ := os.MkdirTemp("", "nbs-e2e-tmp-")
	os.Chmod(tmp, 0o1777)
	defer os.RemoveAll(tmp)
	n := nonce(t)
	cmd := exec.Command(nbsBin, "build", e2eNix(t), "-A", "slow", "--argstr", "nonce", n)
	cmd.Dir = wd
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmp, "HOME=/nonexistent"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the builder runs (its sleep is visible on the host): as
	// root nix-build runs it, below nbs; else the daemon does.
	top := cmd.Process.Pid
	if os.Geteuid() != 0 {
		top = 1
	}
	eventually(func() bool { return runsBelow(top, "sleep 600") })
	cmd.Process.Signal(syscall.SIGINT)
	// Quickly: well before the builder's sleep 600 would end.
	code := waitExit(t, cmd, hang)
	if code != 130 {
		t.Errorf("exit status %d, want 130\nstderr: %s", code, stderr.String())
	}
	if p := gone(n); len(p) > 0 {
		t.Errorf("left running: %v", p)
	}
	if p := gone("nix-build " + e2eNix(t)); len(p) > 0 {
		t.Errorf("nix-build left running: %v", p)
	}
	if strings.Contains(stderr.String(), "entering") {
		t.Errorf("entered a sandbox after Ctrl-C: %s", stderr.String())
	}
	cleanupKept(t, stderr.String())
}

func TestBuildArgsParsing(t *testing.T) {
	cases := []struct {
		args    []string
		run     string
		noShell bool
		program string
		rest    []string
	}{
		{[]string{"./default.nix"}, "", false, "nix-build", []string{"./default.nix"}},
		{[]string{"--run", "make", "-A", "x", "f.nix"}, "make", false, "nix-build", []string{"-A", "x", "f.nix"}},
		{[]string{"--run=ls", "--no-shell", "--", "--run", "x"}, "ls", true, "nix-build", []string{"--run", "x"}},
		{[]string{"-A", "x", "--run", "y"}, "", false, "nix-build", []string{"-A", "x", "--run", "y"}},
		{[]string{".#pkg"}, "", false, "nix", []string{".#pkg"}},
		{[]string{"--nix-build", "/opt/nix/bin/nix-build", "path:/x#y"}, "", false, "/opt/nix/bin/nix-build", []string{"path:/x#y"}},
		{[]string{"-j", "4", "."}, "", false, "nix", []string{"-j", "4", "."}},
		{[]string{"--with", "/nix/store/x-gdb", "--with=strace", "f.nix"}, "", false, "nix-build", []string{"f.nix"}},
	}
	for _, c := range cases {
		o := &BuildOptions{f: &Factory{}}
		if _, err := parseBuildArgs(o, c.args); err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if o.Run != c.run || o.NoShell != c.noShell || o.Program != c.program || strings.Join(o.Args, "\x00") != strings.Join(c.rest, "\x00") {
			t.Errorf("%q: run %q noShell %v program %q args %q", c.args, o.Run, o.NoShell, o.Program, o.Args)
		}
	}
	if _, err := parseBuildArgs(&BuildOptions{f: &Factory{}}, []string{"--run"}); err == nil {
		t.Error("--run without a command accepted")
	}
}

// TestBuildWith: nbs build --with adds a tool to the failed build's
// sandbox, as nbs shell --with does.
func TestBuildWith(t *testing.T) {
	requireNix(t)
	requireUserNS(t)
	extra := builtPath(t, "extraTool")
	res, _ := runBuild(t, nil, "--with", extra, "--run", "nbs-extra-tool", e2eNix(t), "-A", "fail", "--argstr", "nonce", nonce(t))
	cleanupKept(t, res.stderr)
	if res.code != 0 || res.stdout != "extra tool here\n" {
		t.Errorf("status %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
	}
}
