//go:build linux

package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// keptDirWith makes a kept-looking directory: the real env-vars of a
// failed build (so SHELL exists) plus what add puts there.
func keptDirWith(t *testing.T, add func(dir string)) string {
	t.Helper()
	kept := buildFailure(t, "fail")
	env, err := os.ReadFile(filepath.Join(kept, "env-vars"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "nbs-e2e-kept-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "env-vars"), env, 0o644); err != nil {
		t.Fatal(err)
	}
	add(dir)
	return dir
}

// TestShellOddKeptDirs: kept directories with entries nbs cannot or must
// not copy as they are. nbs copies what it can, says what it left out,
// never follows links out of the directory, and leaves nothing behind.
func TestShellOddKeptDirs(t *testing.T) {
	requireUserNS(t)
	cases := []struct {
		name   string
		add    func(dir string)
		cmd    string
		stdout string
		stderr string // a warning that must appear
	}{
		{"socket and device", func(d string) {
			l, err := net.Listen("unix", filepath.Join(d, "sock"))
			if err == nil {
				l.(*net.UnixListener).SetUnlinkOnClose(false)
				l.Close()
			}
			syscall.Mknod(filepath.Join(d, "null"), syscall.S_IFCHR|0o666, 1<<8|3)
			os.WriteFile(filepath.Join(d, "file"), []byte("x\n"), 0o644)
		}, "ls; cat file", "env-vars\nfile\nx\n", "sock (socket)"},
		{"hard links", func(d string) {
			os.WriteFile(filepath.Join(d, "a"), []byte("same\n"), 0o644)
			os.Link(filepath.Join(d, "a"), filepath.Join(d, "b"))
		}, "stat -c %h a; echo changed > a; cat b", "2\nchanged\n", ""},
		{"names with newlines and bad UTF-8", func(d string) {
			os.WriteFile(filepath.Join(d, "new\nline"), []byte("1\n"), 0o644)
			os.WriteFile(filepath.Join(d, "bad\xff"), []byte("2\n"), 0o644)
		}, "cat /build/new*line /build/bad*", "1\n2\n", ""},
		{"links pointing outside", func(d string) {
			os.Symlink("/etc/shadow", filepath.Join(d, "abs"))
			os.Symlink("../../../../../../../root", filepath.Join(d, "rel"))
		}, "readlink abs; readlink rel; cat abs 2>/dev/null || echo unreachable", "/etc/shadow\n../../../../../../../root\nunreachable\n", ""},
		{"deep tree", func(d string) {
			p := d
			for i := 0; i < 300; i++ {
				p = filepath.Join(p, "d")
			}
			os.MkdirAll(p, 0o755)
			os.WriteFile(filepath.Join(p, "leaf"), []byte("deep\n"), 0o644)
		}, "find . -name leaf | wc -l", "1\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := keptDirWith(t, c.add)
			before := treeSum(t, dir)
			res := runNBS(t, nil, nil, "shell", dir, "sh", "-c", c.cmd)
			if res.code != 0 || res.stdout != c.stdout {
				t.Errorf("status %d, stdout %q; want 0, %q\nstderr: %s", res.code, res.stdout, c.stdout, res.stderr)
			}
			if c.stderr != "" && !strings.Contains(res.stderr, c.stderr) {
				t.Errorf("stderr %q does not mention %q", res.stderr, c.stderr)
			}
			if strings.Contains(res.stderr, "goroutine ") {
				t.Errorf("panic: %s", res.stderr)
			}
			assertCleanTmp(t, res)
			if after := treeSum(t, dir); after != before {
				t.Error("the kept directory changed")
			}
		})
	}
}

// TestShellBadEnvVars: env-vars that is empty, huge or names a shell
// that is not there: one line, a non-zero status, nothing left behind.
func TestShellBadEnvVars(t *testing.T) {
	cases := []struct {
		name, content, want string
	}{
		{"empty", "", "SHELL"},
		{"binary", "\x7fELF\x02\x01\x01\x00\x00\x00garbage", "env-vars"},
		{"huge", "declare -x A=\"" + strings.Repeat("a", 100<<20) + "\"\n", "env-vars"},
		{"shell is a directory", "declare -x SHELL=\"/nix/store\"\n", "SHELL"},
		// A build directory on the sandbox's own paths would put the
		// copy's symlinks in the way of the mount plan (run on host
		// paths before pivot_root).
		{"build dir on /dev", "declare -x SHELL=\"/bin/sh\"\ndeclare -x NIX_BUILD_TOP=\"/dev\"\n", "collides with the sandbox's own /dev"},
		{"build dir above /nix", "declare -x SHELL=\"/bin/sh\"\ndeclare -x NIX_BUILD_TOP=\"/\"\n", "NIX_BUILD_TOP"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "env-vars"), []byte(c.content), 0o644)
			res := runNBS(t, nil, nil, "shell", dir, "true")
			if res.code == 0 || !strings.Contains(res.stderr, c.want) || strings.Count(strings.TrimSpace(res.stderr), "\n") > 0 {
				t.Errorf("status %d, stderr %q; want one line mentioning %q", res.code, res.stderr, c.want)
			}
			assertCleanTmp(t, res)
		})
	}
}

// TestShellDiskFull: a copy that runs out of space fails with a clear
// error and leaves no partial copy.
func TestShellDiskFull(t *testing.T) {
	requireRoot(t)
	requireUserNS(t)
	dir := keptDirWith(t, func(d string) {
		os.WriteFile(filepath.Join(d, "big"), make([]byte, 4<<20), 0o644)
	})
	tmp, err := os.MkdirTemp("", "nbs-e2e-full-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := syscall.Mount("tmpfs", tmp, "tmpfs", 0, "size=1m,mode=1777"); err != nil {
		missing(t, "mount a small tmpfs: %v", err)
	}
	defer syscall.Unmount(tmp, syscall.MNT_DETACH)
	cmd := exec.Command(nbsBin, "shell", dir, "true")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "NBS_ENTRY_MODE=copy"}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no space left on device") {
		t.Errorf("err %v, output %q; want a no-space error", err, out)
	}
	if e := tmpEntries(tmp); len(e) > 0 {
		t.Errorf("partial copy left: %v", e)
	}
}
