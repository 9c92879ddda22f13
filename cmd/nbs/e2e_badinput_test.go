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
// not copy as they are, in a copy and in each copy-on-write view (which
// nbs picks without looking inside the directory, so that entry costs
// the same at any size). nbs never follows links out of the directory,
// a socket or device node leads nowhere (a copy leaves it out, saying
// so; a view shows it, inert), what a view does otherwise than a copy
// is said, and nothing is left behind.
func TestShellOddKeptDirs(t *testing.T) {
	requireUserNS(t)
	requireRoot(t)
	type want struct{ stdout, stderr string }
	cases := []struct {
		name string
		add  func(dir string)
		cmd  string
		// what the modes show: a copy, the kernel's overlay, fuse-overlayfs
		copy, overlay, fuse want
	}{
		{"socket and device", func(d string) {
			l, err := net.Listen("unix", filepath.Join(d, "sock"))
			if err == nil {
				l.(*net.UnixListener).SetUnlinkOnClose(false)
				l.Close()
			}
			syscall.Mknod(filepath.Join(d, "null"), syscall.S_IFCHR|0o666, 1<<8|3)
			os.WriteFile(filepath.Join(d, "file"), []byte("x\n"), 0o644)
		}, "ls; cat file; cat null 2>/dev/null || echo null-refused",
			want{"env-vars\nfile\nx\nnull-refused\n", "sock (socket)"},
			want{"env-vars\nfile\nnull\nsock\nx\nnull-refused\n", ""},
			want{"env-vars\nfile\nnull\nsock\nx\nnull-refused\n", ""}},
		{"hard links", func(d string) {
			os.WriteFile(filepath.Join(d, "a"), []byte("same\n"), 0o644)
			os.Link(filepath.Join(d, "a"), filepath.Join(d, "b"))
		}, "stat -c %h a; echo changed > a; cat b",
			// The kernel's overlay splits the link on the write,
			// fuse-overlayfs keeps it while mounted; both are said.
			want{"2\nchanged\n", ""},
			want{"2\nsame\n", "had other names (hard links) in the kept directory"},
			want{"2\nchanged\n", "had other names (hard links) in the kept directory"}},
		{"names with newlines and bad UTF-8", func(d string) {
			os.WriteFile(filepath.Join(d, "new\nline"), []byte("1\n"), 0o644)
			os.WriteFile(filepath.Join(d, "bad\xff"), []byte("2\n"), 0o644)
		}, "cat /build/new*line /build/bad*", want{"1\n2\n", ""}, want{"1\n2\n", ""}, want{"1\n2\n", ""}},
		{"links pointing outside", func(d string) {
			os.Symlink("/etc/shadow", filepath.Join(d, "abs"))
			os.Symlink("../../../../../../../root", filepath.Join(d, "rel"))
		}, "readlink abs; readlink rel; cat abs 2>/dev/null || echo unreachable",
			want{"/etc/shadow\n../../../../../../../root\nunreachable\n", ""},
			want{"/etc/shadow\n../../../../../../../root\nunreachable\n", ""},
			want{"/etc/shadow\n../../../../../../../root\nunreachable\n", ""}},
		{"deep tree", func(d string) {
			p := d
			for i := 0; i < 300; i++ {
				p = filepath.Join(p, "d")
			}
			os.MkdirAll(p, 0o755)
			os.WriteFile(filepath.Join(p, "leaf"), []byte("deep\n"), 0o644)
		}, "find . -name leaf | wc -l", want{"1\n", ""}, want{"1\n", ""}, want{"1\n", ""}},
	}
	u := unprivileged(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := keptDirWith(t, c.add)
			before := treeSum(t, dir)
			// Root copies and stacks the kernel's overlay over an
			// idmapped layer; a user gets fuse-overlayfs over root's
			// directory.
			for _, m := range []struct {
				mode string
				user *testUser
				want want
			}{{"copy", nil, c.copy}, {"overlay", nil, c.overlay}, {"fuse", u, c.fuse}} {
				res := runNBS(t, m.user, []string{"NBS_ENTRY_MODE=" + m.mode}, "shell", dir, "sh", "-c", c.cmd)
				if res.code != 0 || res.stdout != m.want.stdout {
					t.Errorf("%s: status %d, stdout %q; want 0, %q\nstderr: %s", m.mode, res.code, res.stdout, m.want.stdout, res.stderr)
				}
				if m.want.stderr != "" && !strings.Contains(res.stderr, m.want.stderr) {
					t.Errorf("%s: stderr %q does not mention %q", m.mode, res.stderr, m.want.stderr)
				}
				if strings.Contains(res.stderr, "goroutine ") {
					t.Errorf("%s: panic: %s", m.mode, res.stderr)
				}
				assertCleanTmp(t, res)
				if after := treeSum(t, dir); after != before {
					t.Errorf("%s: the kept directory changed", m.mode)
				}
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
