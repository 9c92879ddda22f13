//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 17: where no namespace can be made (a default Docker container,
// used as a builder or to run nbs in), a build that ran with
// sandbox = false is entered without any, and a sandboxed one fails
// with what the container would need. testdata/restrict reproduces the
// container's restrictions: Docker's default capabilities and a seccomp
// filter like its default profile.

var restrictOnce struct {
	sync.Once
	bin string
	err error
}

// restrictBin builds testdata/restrict (static, next to the nbs under
// test, where every test user can run it).
func restrictBin(t *testing.T) string {
	t.Helper()
	restrictOnce.Do(func() {
		bin := filepath.Join(filepath.Dir(nbsBin), "restrict")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./testdata/restrict")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			restrictOnce.err = fmt.Errorf("build testdata/restrict: %v\n%s", err, out)
			return
		}
		restrictOnce.bin = bin
	})
	if restrictOnce.err != nil {
		t.Fatal(restrictOnce.err)
	}
	return restrictOnce.bin
}

// copyRE finds the copy in the word on entry.
var copyRE = regexp.MustCompile(`in a copy of the build directory at (\S+) \(`)

// unsandboxedFailure builds testdata/e2e's fail with sandbox = false and
// returns the kept directory.
func unsandboxedFailure(t *testing.T) string {
	t.Helper()
	requireNix(t)
	cmd := exec.Command("nix-build", "--no-out-link", "--keep-failed", "--option", "sandbox", "false",
		e2eNix(t), "-A", "fail", "--argstr", "nonce", fmt.Sprintf("nons-%d-%d", time.Now().UnixNano(), nonceCounter.Add(1)))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if cmd.Run() == nil {
		t.Fatal("the build succeeded")
	}
	m := keptRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no kept directory:\n%s", stderr.String())
	}
	t.Cleanup(func() { os.RemoveAll(m[1]) })
	return m[1]
}

// checkNoNamespaceEntry checks the words nbs says on entering without
// namespaces, and returns the copy they name.
func checkNoNamespaceEntry(t *testing.T, stderr, kept string) string {
	t.Helper()
	m := copyRE.FindStringSubmatch(stderr)
	if m == nil || !strings.Contains(stderr, "absolute paths recorded inside files still name the original "+kept) {
		t.Fatalf("no word on entering without namespaces:\n%s", stderr)
	}
	if n := strings.Count(stderr, "--security-opt seccomp=unconfined"); n != 1 || !strings.Contains(stderr, "nbs: warning: namespaces are refused here: a seccomp filter refuses namespaces") {
		t.Errorf("the container's fix said %d times, want once:\n%s", n, stderr)
	}
	// Beside the original; in TMPDIR (the tests' private nbs-e2e-tmp-*)
	// where the caller may not create a directory there, as a user
	// beside Nix 2.30+'s root-owned /nix/var/nix/builds/nix-PID-N.
	work := filepath.Dir(filepath.Dir(m[1]))
	if work != filepath.Dir(kept) && !strings.HasPrefix(filepath.Base(work), "nbs-e2e-tmp-") {
		t.Errorf("copy %s is neither beside %s nor in TMPDIR", m[1], kept)
	}
	return m[1]
}

// TestShellNoNamespaces: nbs shell under a default Docker container's
// restrictions, on a kept directory of a sandbox = false build.
func TestShellNoNamespaces(t *testing.T) {
	requireRoot(t)
	restrict := restrictBin(t)
	dir := unsandboxedFailure(t)
	before := treeSum(t, dir)
	for _, r := range runners(t) {
		t.Run(r.name, func(t *testing.T) {
			res := runNBSUnder(t, []string{restrict}, r.user, r.env, "shell", "--no-sandbox", dir, "sh", "-c",
				`pwd; echo "$NIX_BUILD_TOP $TMPDIR $PWD"; cat "$NIX_BUILD_TOP/src/file.txt"; echo changed > src/file.txt; id -u; `+
					`sleep 9717 & exit 5`)
			copy := checkNoNamespaceEntry(t, res.stderr, dir)
			lines := strings.Split(res.stdout, "\n")
			if res.code != 5 || len(lines) != 5 || lines[0] != copy || lines[1] != copy+" "+copy+" "+copy || lines[2] != "hello" {
				t.Fatalf("status %d, stdout %q; want 5, the copy %s and the build's file\nstderr: %s", res.code, res.stdout, copy, res.stderr)
			}
			// As the build's user: the caller, or a build user as root.
			uid, _ := strconv.Atoi(lines[3])
			if (r.hostUID >= 0 && uid != r.hostUID) || (r.hostUID < 0 && !r.buildUsers[uid]) {
				t.Errorf("ran as uid %d (runner %s)", uid, r.name)
			}
			if after := treeSum(t, dir); after != before {
				t.Error("the kept directory changed")
			}
			if _, err := os.Lstat(filepath.Dir(copy)); !os.IsNotExist(err) {
				t.Errorf("the copy's work directory is left: %v", err)
			}
			// Ended by nbs before it exited (a unique command line).
			if ps := processesWith("sleep 9717"); len(ps) > 0 {
				t.Error("the command's background job outlived it")
			}
			assertCleanTmp(t, res)
		})
	}

	t.Run("build", func(t *testing.T) {
		// nbs build in such a container: the same, and --run's status.
		res := runNBSUnder(t, []string{restrict}, nil, nil, "build", "--run", `cat "$NIX_BUILD_TOP/src/file.txt"; exit 6`,
			"--option", "sandbox", "false", e2eNix(t), "-A", "fail", "--argstr", "nonce", fmt.Sprintf("nons-build-%d", time.Now().UnixNano()))
		cleanupKept(t, res.stderr)
		dirs := keptDirsIn(res.stderr)
		if res.code != 6 || res.stdout != "hello\n" || len(dirs) != 1 {
			t.Fatalf("status %d, stdout %q, kept %q; want 6 and the build's file\nstderr: %s", res.code, res.stdout, dirs, res.stderr)
		}
		checkNoNamespaceEntry(t, res.stderr, dirs[0])
		// Root's nix-build built in-process, keeping the directory in
		// nbs's TMPDIR: only that may be left there.
		for _, e := range tmpEntries(res.tmp) {
			if !strings.HasPrefix(e, "nix-build-") {
				t.Errorf("nbs left %s in TMPDIR", e)
			}
		}
	})

	t.Run("killed", func(t *testing.T) {
		// nbs killed with SIGKILL leaves its work directory beside the
		// kept one; the next nbs there removes it.
		cmd := exec.Command(restrict, nbsBin, "shell", "--no-sandbox", dir, "sh", "-c", "echo started; exec sleep 9718")
		cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + privateTmp(t), "HOME=/nonexistent"}
		var stdout, stderr lockedBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if !eventually(func() bool { return strings.Contains(stdout.String(), "started") }) {
			t.Fatalf("the command never started:\n%s", stderr.String())
		}
		cmd.Process.Kill()
		cmd.Wait()
		m := copyRE.FindStringSubmatch(stderr.String())
		if m == nil {
			t.Fatalf("no copy named:\n%s", stderr.String())
		}
		work := filepath.Dir(m[1])
		t.Cleanup(func() { os.RemoveAll(work) })
		if _, err := os.Stat(work); err != nil {
			t.Fatalf("the killed nbs left no work directory: %v", err)
		}
		res := runNBSUnder(t, []string{restrict}, nil, nil, "shell", "--no-sandbox", dir, "true")
		if _, err := os.Stat(work); res.code != 0 || !os.IsNotExist(err) {
			t.Errorf("status %d; the stale work directory %s: %v\nstderr: %s", res.code, work, err, res.stderr)
		}
		// Its parent's death signal ends it; the kernel may take a while.
		if ps := gone("sleep 9718"); len(ps) > 0 {
			t.Error("the command outlived the killed nbs")
		}
	})

	t.Run("sandboxed", func(t *testing.T) {
		// A sandboxed build cannot be entered at all: one line, with
		// the fix, and nothing left behind.
		kept := buildFailure(t, "fail")
		res := runNBSUnder(t, []string{restrict}, nil, nil, "shell", kept, "true")
		if res.code != 1 || strings.Count(res.stderr, "\n") != 1 ||
			!strings.Contains(res.stderr, "nbs: start sandbox: user namespaces are not available: ") ||
			!strings.Contains(res.stderr, "`docker run --security-opt seccomp=unconfined …` (or --privileged)") {
			t.Errorf("status %d\nstderr: %s", res.code, res.stderr)
		}
		assertCleanTmp(t, res)
	})
}

// TestRemoteNoNamespaces: a builder like the nixos/nix image in a
// default Docker container (sandbox = false, filter-syscalls = false,
// Docker's capabilities and seccomp profile). nbs build enters the
// failure there without namespaces, and nbs shell --remote as printed.
func TestRemoteNoNamespaces(t *testing.T) {
	b := startBuilder(t, dockerBuilder)
	name := fmt.Sprintf("nbs-remote-nons-%d", time.Now().UnixNano()%1_000_000_000)
	decoy(t, name)
	build := func(run ...string) result {
		args := append(append([]string{"build"}, run...), "--max-jobs", "0", "--builders", "ssh://"+builderAlias+" x86_64-linux",
			remoteNix(t), "-A", "fail", "--argstr", "name", name, "--argstr", "nonce", nonce(t)+strings.Join(run, ""))
		return b.run(t, args...)
	}

	t.Run("run", func(t *testing.T) {
		res := build("--run", `cat "$NIX_BUILD_TOP/src/file.txt"; echo changed > "$NIX_BUILD_TOP/src/file.txt"; rm "$NIX_BUILD_TOP/src/link"; id -u; exit 5`)
		dirs := keptDirsIn(res.stderr)
		if len(dirs) != 1 {
			t.Fatalf("kept directories %q\nstderr: %s", dirs, res.stderr)
		}
		checkNoNamespaceEntry(t, res.stderr, dirs[0])
		lines := strings.Split(res.stdout, "\n")
		if uid, _ := strconv.Atoi(lines[len(lines)-2]); res.code != 5 || len(lines) != 3 || lines[0] != "from the remote build" || uid == 0 {
			t.Fatalf("status %d, stdout %q; want 5, the remote build's file and a build user\nstderr: %s", res.code, res.stdout, res.stderr)
		}
		b.checkKeptFile(t, dirs[0])
		b.checkClean(t)
		assertCleanTmp(t, res)
	})

	t.Run("no terminal", func(t *testing.T) {
		res := build()
		m := enterRE.FindStringSubmatch(res.stderr)
		dirs := keptDirsIn(res.stderr)
		if res.code != 1 || m == nil || len(dirs) != 1 {
			t.Fatalf("status %d; want nix-build's 1 and an 'nbs shell --remote' command\nstderr: %s", res.code, res.stderr)
		}
		before := treeSum(t, b.root+dirs[0])
		code, stdout, stderr := b.runPrinted(m[1], `cat src/file.txt; echo "$NIX_BUILD_TOP"; rm -rf src; exit 7`)
		copy := checkNoNamespaceEntry(t, stderr, dirs[0])
		if code != 7 || stdout != "from the remote build\n"+copy+"\n" {
			t.Errorf("%s: status %d, stdout %q\nstderr: %s", m[1], code, stdout, stderr)
		}
		if after := treeSum(t, b.root+dirs[0]); after != before {
			t.Errorf("the remote kept directory changed:\n%s\n---\n%s", before, after)
		}
		b.checkClean(t)
	})
}

// TestShellNoNamespacesInteractive: the interactive shell without
// namespaces has a terminal of its own, starts in the copy where the
// failing phase did, takes Ctrl-C, and what it left running ends with it.
func TestShellNoNamespacesInteractive(t *testing.T) {
	requireRoot(t)
	restrict := restrictBin(t)
	dir := unsandboxedFailure(t)
	tm := newTerm(t)
	tmp := privateTmp(t)
	cmd := exec.Command(restrict, nbsBin, "shell", "--no-sandbox", dir)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TERM=xterm", "NO_COLOR=1", "HOME=/nonexistent", "TMPDIR=" + tmp}
	done := tm.start(t, cmd)
	t.Cleanup(func() { cmd.Process.Kill() })

	// As root the copy goes beside the original: /tmp up to Nix 2.29,
	// /nix/var/nix/builds from 2.30.
	beside := filepath.Dir(dir) + "/nbs-"
	tm.expect(t, "in a copy of the build directory at "+beside)
	tm.expect(t, "/build/src $ ")
	tm.send(`echo "top=$NIX_BUILD_TOP"; tty` + "\r")
	tm.expect(t, "top="+beside)
	tm.expect(t, "/dev/pts/")
	tm.send("sleep 9720\r")
	waitRunning(t, cmd.Process.Pid, "sleep 9720")
	tm.send("\x03")
	tm.send("echo after-int $?\r")
	tm.expect(t, "after-int 130")
	tm.send("sleep 9719 & exit 3\r")
	exitWithin(t, done, 3)
	if ps := processesWith("sleep 9719"); len(ps) > 0 {
		t.Error("the shell's background job outlived it")
	}
	if e := tmpEntries(tmp); len(e) > 0 {
		t.Errorf("TMPDIR not cleaned: %v", e)
	}
}
