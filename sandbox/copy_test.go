//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests build trees in t.TempDir(), copy them and compare listings of
// src before and after and of src against dst. Run as root (as CI does)
// they cannot see EACCES, so TestCopyTreeAsNobody re-runs them as nobody.

// entryInfo is what the listings compare.
type entryInfo struct {
	Type, Mode          uint32
	Size                int64
	Nlink               uint64
	UID, GID            uint32
	Atime, Mtime, Ctime unix.Timespec
	Target              string // symlinks
	Content             string // sha256 of a regular file, or "unreadable"
	LinkOf              string // first path in the listing sharing this inode
}

// listTree lists root (of ordinary depth) without changing it: files and
// directories are opened with O_NOATIME, which the kernel grants the tests
// since they own what they made.
func listTree(t *testing.T, root string) map[string]entryInfo {
	t.Helper()
	out := make(map[string]entryInfo)
	inodes := make(map[uint64]string)
	var visit func(rel string)
	visit = func(rel string) {
		p := filepath.Join(root, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			out[rel] = entryInfo{Content: "unreadable"}
			return
		}
		e := entryInfo{
			Type: st.Mode & unix.S_IFMT, Mode: st.Mode & 0o7777, Size: st.Size,
			Nlink: uint64(st.Nlink), UID: st.Uid, GID: st.Gid,
			Atime: st.Atim, Mtime: st.Mtim, Ctime: st.Ctim,
		}
		if e.Type != unix.S_IFDIR && st.Nlink > 1 {
			if first, ok := inodes[st.Ino]; ok {
				e.LinkOf = first
			} else {
				inodes[st.Ino] = rel
			}
		}
		var children []string
		switch e.Type {
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			e.Target = target
		case unix.S_IFREG:
			fd, err := openNoatime(p, 0)
			if err != nil {
				e.Content = "unreadable"
				break
			}
			f := os.NewFile(uintptr(fd), p)
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			e.Content = hex.EncodeToString(h.Sum(nil))
		case unix.S_IFDIR:
			fd, err := openNoatime(p, unix.O_DIRECTORY)
			if err != nil {
				e.Content = "unreadable"
				break
			}
			children, err = readNames(fd, make([]byte, 4096))
			unix.Close(fd)
			if err != nil {
				t.Fatal(err)
			}
		}
		out[rel] = e
		for _, c := range children {
			visit(filepath.Join(rel, c))
		}
	}
	visit(".")
	return out
}

func openNoatime(path string, flags int) (int, error) {
	flags |= unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(path, flags, 0)
	}
	return fd, err
}

// diffTrees reports how the copy dst differs from src, leaving out the
// paths skip says to and what a copy cannot keep: inode change times,
// directory sizes and link counts, the access times of symlinks (readlink sets them) and,
// unless owners is set, ownership.
func diffTrees(src, dst map[string]entryInfo, owners bool, skip func(string) bool) []string {
	var diffs []string
	var paths []string
	for p := range src {
		paths = append(paths, p)
	}
	for p := range dst {
		if _, ok := src[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		if skip != nil && skip(p) {
			continue
		}
		s, sok := src[p]
		d, dok := dst[p]
		if !sok || !dok {
			diffs = append(diffs, fmt.Sprintf("%q: in src %v, in dst %v", p, sok, dok))
			continue
		}
		s.Ctime, d.Ctime = unix.Timespec{}, unix.Timespec{}
		if s.Type == unix.S_IFDIR {
			// Sizes depend on the directory's history; link counts
			// on subdirectories, compared one by one.
			s.Size, d.Size, s.Nlink, d.Nlink = 0, 0, 0, 0
		}
		if s.Type == unix.S_IFLNK {
			s.Atime, d.Atime = unix.Timespec{}, unix.Timespec{}
		}
		if !owners {
			s.UID, s.GID, d.UID, d.GID = 0, 0, 0, 0
		}
		if s != d {
			diffs = append(diffs, fmt.Sprintf("%q:\n\tsrc %+v\n\tdst %+v", p, s, d))
		}
	}
	return diffs
}

// setTimes gives every entry of root that it can reach distinct times with
// nanoseconds, access time before modification time so that any read
// without O_NOATIME would show (relatime updates such an atime).
func setTimes(t *testing.T, root string) {
	t.Helper()
	var paths []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return nil
	})
	// Deepest first, so that a directory's times are set after its
	// entries'.
	sort.SliceStable(paths, func(i, j int) bool {
		return strings.Count(paths[i], "/") > strings.Count(paths[j], "/")
	})
	base := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for i, p := range paths {
		m := base.Add(time.Duration(i)*time.Hour + 123456789)
		ts := []unix.Timespec{unix.NsecToTimespec(m.Add(-time.Hour - 111).UnixNano()), unix.NsecToTimespec(m.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil && err != unix.EACCES {
			t.Fatalf("set times of %s: %v", p, err)
		}
	}
}

// treeMaker builds test trees, failing the test on error.
type treeMaker struct{ t *testing.T }

func (m treeMaker) file(path, content string, mode uint32) {
	m.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		m.t.Fatal(err)
	}
	m.mode(path, mode)
}

func (m treeMaker) dir(path string) {
	m.t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		m.t.Fatal(err)
	}
}

// mode sets the mode bits as given (os.Chmod maps setuid and the like).
func (m treeMaker) mode(path string, mode uint32) {
	m.t.Helper()
	if err := unix.Chmod(path, mode); err != nil {
		m.t.Fatal(err)
	}
}

func (m treeMaker) symlink(target, path string) {
	m.t.Helper()
	if err := os.Symlink(target, path); err != nil {
		m.t.Fatal(err)
	}
}

func (m treeMaker) link(old, path string) {
	m.t.Helper()
	if err := unix.Linkat(unix.AT_FDCWD, old, unix.AT_FDCWD, path, 0); err != nil {
		m.t.Fatal(err)
	}
}

func runningAsRoot() bool { return os.Geteuid() == 0 }

// removeLater removes dir with removeTree before t.TempDir's own clean-up,
// which cannot enter 0000 directories.
func removeLater(t *testing.T, dir string) {
	t.Cleanup(func() {
		if err := removeTree(dir); err != nil {
			t.Errorf("clean up: %v", err)
		}
	})
}

func TestCopyTree(t *testing.T) {
	type result struct {
		src, dst string
		rep      copyReport
		err      error
	}
	tests := []struct {
		name  string
		build func(m treeMaker, src string)
		// skip leaves paths out of the src/dst comparison.
		skip func(p string) bool
		// check looks at the result; when nil the copy must succeed.
		check func(t *testing.T, r result)
		opts  copyOptions
		root  string // "only" or "never": run only as root, never as root
		why   string // said when skipped
	}{
		{
			name: "modes",
			build: func(m treeMaker, src string) {
				m.file(src+"/private", "p", 0o600)
				m.file(src+"/exec", "#!/bin/sh\n", 0o755)
				m.file(src+"/setuid", "s", 0o4755)
				m.file(src+"/setgid", "g", 0o2755)
				m.file(src+"/readonly", "r", 0o444)
				m.file(src+"/closed/inside", "i", 0o644)
				m.mode(src+"/closed", 0o700)
				m.file(src+"/ro/inside", "i", 0o644)
				m.mode(src+"/ro", 0o555)
				m.dir(src + "/sticky")
				m.mode(src+"/sticky", 0o1777)
				m.mode(src, 0o751)
			},
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
				want := copyReport{Files: 7, Dirs: 4, Bytes: 16}
				if r.rep.Files != want.Files || r.rep.Dirs != want.Dirs || r.rep.Bytes != want.Bytes {
					t.Errorf("report %+v, want %+v", r.rep, want)
				}
			},
		},
		{
			name: "symlinks",
			build: func(m treeMaker, src string) {
				m.file(filepath.Dir(src)+"/outside/secret", "secret", 0o644)
				m.dir(src + "/a/b")
				m.symlink("nowhere", src+"/dangling")
				m.symlink("/etc/passwd", src+"/absolute")
				m.symlink("../../outside", src+"/a/b/relative")
				m.symlink("../outside", src+"/dirlink")
				m.symlink(strings.Repeat("x/", 1000), src+"/long")
			},
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
				if r.rep.Symlinks != 5 || r.rep.Files != 0 {
					t.Errorf("%d symlinks, %d files copied; want 5, 0", r.rep.Symlinks, r.rep.Files)
				}
			},
		},
		{
			name: "empty dirs",
			build: func(m treeMaker, src string) {
				m.dir(src + "/a/b/c")
				m.dir(src + "/d")
			},
		},
		{
			name: "fifo",
			build: func(m treeMaker, src string) {
				if err := unix.Mkfifo(src+"/fifo", 0o640); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, r result) {
				if r.err != nil || r.rep.Fifos != 1 {
					t.Fatalf("err %v, %d fifos; want nil, 1", r.err, r.rep.Fifos)
				}
			},
		},
		{
			name: "hard links",
			build: func(m treeMaker, src string) {
				m.file(src+"/a/first", "shared", 0o640)
				m.dir(src + "/b")
				m.link(src+"/a/first", src+"/a/second")
				m.link(src+"/a/first", src+"/b/third")
				m.file(src+"/other", "other", 0o600)
				m.link(src+"/other", src+"/b/other")
				m.symlink("target", src+"/a/link")
				m.link(src+"/a/link", src+"/b/link")
				// The first name in the top directory, the second 40
				// levels down, past the descriptors the walk keeps.
				deep := src + "/deep" + strings.Repeat("/d", 40)
				m.dir(deep)
				m.link(src+"/other", deep+"/far")
				m.link(src+"/a/first", deep+"/../near")
				m.link(deep+"/../near", deep+"/nearer")
				m.file(src+"/zz", "after the deep dir", 0o644)
			},
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
				if r.rep.Files != 3 || r.rep.HardLinks != 7 {
					t.Errorf("%d files, %d hard links; want 3, 7", r.rep.Files, r.rep.HardLinks)
				}
			},
		},
		{
			name: "odd names",
			build: func(m treeMaker, src string) {
				m.file(src+"/new\nline", "nl", 0o644)
				m.file(src+"/\xff\xfe", "not utf-8", 0o644)
				m.file(src+"/\n/\t tab", "in a dir named newline", 0o644)
				m.file(src+"/-dash", "", 0o644)
				m.symlink("\xff\n", src+"/odd target")
			},
		},
		{
			name: "unreadable",
			root: "never", why: "root reads everything: EACCES never happens (TestCopyTreeAsNobody runs this as nobody)",
			build: func(m treeMaker, src string) {
				m.file(src+"/env-vars", "secret", 0o000)
				m.file(src+"/a/ok", "ok", 0o644)
				m.file(src+"/a/b", "b", 0o200)
				m.file(src+"/c/lost", "lost", 0o644)
				m.mode(src+"/c", 0o000)
				m.file(src+"/d/x", "x", 0o644)
				m.mode(src+"/d", 0o600) // listable, not searchable
				m.file(src+"/ok", "ok", 0o644)
			},
			skip: func(p string) bool {
				for _, u := range []string{"env-vars", "a/b", "c", "d/x"} {
					if p == u || strings.HasPrefix(p, u+"/") {
						return true
					}
				}
				return false
			},
			check: func(t *testing.T, r result) {
				var ue *unreadableError
				if !errors.As(r.err, &ue) {
					t.Fatalf("err %v, want *unreadableError", r.err)
				}
				if want := []string{"a/b", "c", "d/x", "env-vars"}; !slices.Equal(ue.Paths, want) {
					t.Errorf("unreadable %q, want %q", ue.Paths, want)
				}
				if !errors.Is(r.err, fs.ErrPermission) {
					t.Errorf("errors.Is(%v, fs.ErrPermission) is false", r.err)
				}
				want := fmt.Sprintf("cannot read 4 files in %s: a/b, c, d/x, env-vars (permission denied)", r.src)
				if r.err.Error() != want {
					t.Errorf("message %q\nwant %q", r.err, want)
				}
				for _, p := range []string{"env-vars", "a/b", "c"} {
					if _, err := os.Lstat(filepath.Join(r.dst, p)); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("dst/%s: %v, want it absent", p, err)
					}
				}
				for _, p := range []string{"ok", "a/ok"} {
					if b, err := os.ReadFile(filepath.Join(r.dst, p)); err != nil || string(b) != "ok" {
						t.Errorf("dst/%s: %q, %v; want it copied", p, b, err)
					}
				}
			},
		},
		{
			name: "sockets and devices",
			build: func(m treeMaker, src string) {
				fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(fd)
				if err := unix.Bind(fd, &unix.SockaddrUnix{Name: src + "/sock"}); err != nil {
					t.Fatal(err)
				}
				if runningAsRoot() {
					if err := unix.Mknod(src+"/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
						t.Logf("no device node to skip: mknod: %v", err)
					}
				}
				m.file(src+"/kept", "kept", 0o644)
			},
			skip: func(p string) bool { return p == "sock" || p == "null" },
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
				want := []string{"sock (socket)"}
				if _, err := os.Lstat(r.src + "/null"); err == nil {
					want = []string{"null (character device)", "sock (socket)"}
				}
				if !slices.Equal(r.rep.Skipped, want) {
					t.Errorf("skipped %q, want %q", r.rep.Skipped, want)
				}
				for _, p := range []string{"sock", "null"} {
					if _, err := os.Lstat(filepath.Join(r.dst, p)); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("dst/%s: %v, want it absent", p, err)
					}
				}
			},
		},
		{
			name: "chown",
			root: "only", why: "only root can chown",
			opts: copyOptions{Chown: &Owner{UID: 65534, GID: 65534}},
			build: func(m treeMaker, src string) {
				m.file(src+"/setuid", "s", 0o4755)
				m.file(src+"/dir/file", "f", 0o640)
				m.symlink("file", src+"/dir/link")
				if err := unix.Mkfifo(src+"/fifo", 0o600); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
				for p, e := range listTree(t, r.dst) {
					if e.UID != 65534 || e.GID != 65534 {
						t.Errorf("dst/%s is owned by %d:%d, want 65534:65534", p, e.UID, e.GID)
					}
				}
			},
		},
		{
			name: "progress",
			build: func(m treeMaker, src string) {
				m.file(src+"/a", strings.Repeat("a", 1000), 0o644)
				m.file(src+"/b/c", strings.Repeat("c", 2000), 0o644)
				m.link(src+"/a", src+"/b/a")
			},
			opts: copyOptions{Progress: func(CopyProgress) {}}, // replaced below
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := treeMaker{t}
			switch {
			case tt.root == "only" && !runningAsRoot():
				t.Skip("not root: " + tt.why)
			case tt.root == "never" && runningAsRoot():
				t.Skip(tt.why)
			}
			dir := t.TempDir()
			removeLater(t, dir)
			src, dst := dir+"/src", dir+"/dst"
			m.dir(src)
			tt.build(m, src)
			setTimes(t, src)
			opts := tt.opts
			var calls []CopyProgress
			if opts.Progress != nil {
				opts.Progress = func(p CopyProgress) { calls = append(calls, p) }
			}
			before := listTree(t, src)

			rep, err := copyTree(context.Background(), src, dst, opts)

			after := listTree(t, src)
			for p, b := range before {
				a := after[p]
				if b.Type == unix.S_IFLNK {
					b.Atime, a.Atime = unix.Timespec{}, unix.Timespec{}
				}
				if a != b {
					t.Errorf("src/%s changed:\n\tbefore %+v\n\tafter  %+v", p, b, a)
				}
			}
			if len(after) != len(before) {
				t.Errorf("src has %d entries, had %d", len(after), len(before))
			}
			copied := listTree(t, dst)
			for _, d := range diffTrees(before, copied, opts.Chown == nil, tt.skip) {
				t.Error(d)
			}
			r := result{src, dst, rep, err}
			if tt.check != nil {
				tt.check(t, r)
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.opts.Progress != nil {
				if len(calls) == 0 {
					t.Fatal("Progress never called")
				}
				want := CopyProgress{Files: 2, Bytes: 3000, TotalFiles: 2, TotalBytes: 3000, Done: true}
				if last := calls[len(calls)-1]; last != want {
					t.Errorf("last progress %+v, want %+v", last, want)
				}
			}
		})
	}
}

func TestCopyTreeDstExists(t *testing.T) {
	m := treeMaker{t}
	dir := t.TempDir()
	m.file(dir+"/src/f", "f", 0o644)
	m.dir(dir + "/dst")
	if _, err := copyTree(context.Background(), dir+"/src", dir+"/dst", copyOptions{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err %v, want one matching fs.ErrExist", err)
	}
	if _, err := copyTree(context.Background(), dir+"/src/f", dir+"/dst2", copyOptions{}); err == nil {
		t.Fatal("copied a file as a tree")
	}
	m.symlink("src", dir+"/link")
	if _, err := copyTree(context.Background(), dir+"/link", dir+"/dst3", copyOptions{}); err == nil {
		t.Fatal("followed src, a symlink")
	}
}

// makeDeep makes depth nested directories "d" under root with
// directory-relative calls (the paths are far beyond PATH_MAX): a file "f"
// holding the level every 1000 levels, a 0500 directory at level 5000, a
// symlink at the bottom, and distinct times on every directory.
func makeDeep(t *testing.T, root string, depth int) {
	t.Helper()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= depth; i++ {
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			ffd, err := unix.Openat(next, "f", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			unix.Write(ffd, []byte(strconv.Itoa(i)))
			unix.Close(ffd)
		}
		if i == depth {
			if err := unix.Symlinkat("../../..", next, "up"); err != nil {
				t.Fatal(err)
			}
		}
		// fd (level i-1) is now complete.
		if err := futimens(fd, deepTimes(i-1)); err != nil {
			t.Fatal(err)
		}
		if i-1 == 5000 {
			unix.Fchmod(fd, 0o500)
		}
		unix.Close(fd)
		fd = next
	}
	futimens(fd, deepTimes(depth))
	unix.Close(fd)
}

func deepTimes(level int) *unix.Stat_t {
	return &unix.Stat_t{
		Atim: unix.Timespec{Sec: 1e9 + int64(level), Nsec: 1},
		Mtim: unix.Timespec{Sec: 1e9 + int64(level), Nsec: int64(level)},
	}
}

func countOpenFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestCopyTreeDeep(t *testing.T) {
	m := treeMaker{t}
	const depth = 10000
	dir := t.TempDir()
	removeLater(t, dir)
	src, dst := dir+"/src", dir+"/dst"
	m.dir(src)
	makeDeep(t, src, depth)

	c := newCopier(copyOptions{})
	base, most, n := countOpenFDs(t), 0, 0
	c.beforeEntry = func() {
		if n++; n%500 == 0 {
			most = max(most, countOpenFDs(t))
		}
	}
	start := time.Now()
	rep, err := c.run(context.Background(), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("copied %d levels in %v, at most %d descriptors open (%d before)", depth, time.Since(start), most, base)
	if rep.Dirs != depth+1 || rep.Files != depth/1000 || rep.Symlinks != 1 {
		t.Errorf("report %+v", rep)
	}
	if bound := base + 2*maxOpenDirs + 6*defaultWorkers + 8; most > bound {
		t.Errorf("%d descriptors open during the copy, want at most %d", most, bound)
	}

	// Walk down the copy and check every level.
	fd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		if want := deepTimes(i); st.Mtim != want.Mtim || st.Atim != want.Atim {
			t.Fatalf("level %d: times %v %v, want %v %v", i, st.Atim, st.Mtim, want.Atim, want.Mtim)
		}
		if want := uint32(0o755); i == 5000 {
			if st.Mode&0o7777 != 0o500 {
				t.Fatalf("level 5000: mode %#o, want 0500", st.Mode&0o7777)
			}
		} else if i > 0 && st.Mode&0o7777 != want {
			t.Fatalf("level %d: mode %#o, want %#o", i, st.Mode&0o7777, want)
		}
		if i > 0 && i%1000 == 0 {
			buf := make([]byte, 16)
			ffd, err := unix.Openat(fd, "f", unix.O_RDONLY, 0)
			if err != nil {
				t.Fatalf("level %d: %v", i, err)
			}
			n, _ := unix.Read(ffd, buf)
			unix.Close(ffd)
			if string(buf[:n]) != strconv.Itoa(i) {
				t.Fatalf("level %d: f holds %q", i, buf[:n])
			}
		}
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err == unix.ENOENT {
			if i != depth {
				t.Fatalf("copy is %d levels deep, want %d", i, depth)
			}
			buf := make([]byte, 64)
			n, err := unix.Readlinkat(fd, "up", buf)
			if err != nil || string(buf[:n]) != "../../.." {
				t.Fatalf("bottom symlink: %q, %v", buf[:n], err)
			}
			unix.Close(fd)
			break
		}
		if err != nil {
			t.Fatalf("level %d: %v", i, err)
		}
		unix.Close(fd)
		fd = next
	}

	for _, p := range []string{dst, src} {
		if err := removeTree(p); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s still there after removeTree: %v", p, err)
		}
	}
}

func TestCopyTreeCancel(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		m := treeMaker{t}
		dir := t.TempDir()
		m.file(dir+"/src/f", "f", 0o644)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := copyTree(ctx, dir+"/src", dir+"/dst", copyOptions{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	})

	t.Run("between files", func(t *testing.T) {
		m := treeMaker{t}
		dir := t.TempDir()
		for i := range 200 {
			m.file(fmt.Sprintf("%s/src/%03d", dir, i), "x", 0o644)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := newCopier(copyOptions{})
		n := 0
		c.beforeEntry = func() {
			if n++; n == 20 {
				cancel()
			}
		}
		rep, err := c.run(ctx, dir+"/src", dir+"/dst")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		if rep.Files >= 200 {
			t.Fatalf("copied all %d files", rep.Files)
		}
	})

	// In the middle of a file, with each way of copying data. FICLONE is
	// off: a reflink would copy the file at once.
	for _, tt := range []struct {
		name          string
		noCopyRange   bool
		chunk, chunks int
	}{
		{"copy_file_range", false, 64 << 10, 16},
		{"read and write", true, 1 << 20, 16},
	} {
		t.Run("inside a file with "+tt.name, func(t *testing.T) {
			m := treeMaker{t}
			dir := t.TempDir()
			m.file(dir+"/src/big", strings.Repeat("x", tt.chunk*tt.chunks), 0o644)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := newCopier(copyOptions{})
			c.noClone.Store(true)
			c.noCopyRange.Store(tt.noCopyRange)
			c.chunk = tt.chunk
			c.afterChunk = cancel
			_, err := c.run(ctx, dir+"/src", dir+"/dst")
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want context.Canceled", err)
			}
			st, err := os.Stat(dir + "/dst/big")
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() >= int64(tt.chunk*tt.chunks) {
				t.Fatalf("copied all %d bytes before stopping", st.Size())
			}
		})
	}
}

// TestCopyTreeNoSpace copies onto a full tmpfs, which needs root to mount.
func TestCopyTreeNoSpace(t *testing.T) {
	m := treeMaker{t}
	dir := t.TempDir()
	small := dir + "/small"
	m.dir(small)
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v); needs root", err)
	}
	t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH) })
	m.file(dir+"/src/big/data", strings.Repeat("x", 1<<20), 0o644)
	_, err := copyTree(context.Background(), dir+"/src", small+"/dst", copyOptions{})
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("err %v, want ENOSPC", err)
	}
	if want := "copy big/data: write: no space left on device"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestUnreadableErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		paths []string
		want  string
	}{
		{[]string{"env-vars"}, "cannot read 1 file in /src: env-vars (permission denied)"},
		{[]string{"env-vars", "a/b", "c"}, "cannot read 3 files in /src: env-vars, a/b, c (permission denied)"},
		{[]string{"1", "2", "3", "4", "5", "6", "7"}, "cannot read 7 files in /src: 1, 2, 3, 4, 5 and 2 more (permission denied)"},
		{[]string{"new\nline", "\xff"}, `cannot read 2 files in /src: "new\nline", "\xff" (permission denied)`},
	} {
		err := &unreadableError{Dir: "/src", Paths: tt.paths, Err: unix.EACCES}
		if got := err.Error(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}

func TestRemoveTree(t *testing.T) {
	t.Run("closed directories and symlinks", func(t *testing.T) {
		m := treeMaker{t}
		dir := t.TempDir()
		removeLater(t, dir)
		m.file(dir+"/outside/keep", "keep", 0o644)
		tree := dir + "/tree"
		m.file(tree+"/ro/closed/file", "f", 0o000)
		m.file(tree+"/ro/file", "f", 0o444)
		m.file(tree+"/closed/deeper/file", "f", 0o644)
		m.dir(tree + "/writeonly")
		m.symlink("../outside", tree+"/escape")
		m.symlink(dir+"/outside/keep", tree+"/ro/abs")
		m.mode(tree+"/ro/closed", 0o000)
		m.mode(tree+"/ro", 0o500)
		m.mode(tree+"/closed/deeper", 0o000)
		m.mode(tree+"/closed", 0o000)
		m.mode(tree+"/writeonly", 0o300)
		m.mode(tree, 0o500)
		if err := removeTree(tree); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(tree); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("tree still there: %v", err)
		}
		if b, err := os.ReadFile(dir + "/outside/keep"); err != nil || string(b) != "keep" {
			t.Fatalf("outside/keep: %q, %v", b, err)
		}
	})

	t.Run("deep", func(t *testing.T) {
		m := treeMaker{t}
		dir := t.TempDir()
		removeLater(t, dir)
		m.dir(dir + "/tree")
		makeDeep(t, dir+"/tree", 10000)
		if err := removeTree(dir + "/tree"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(dir + "/tree"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("tree still there: %v", err)
		}
	})

	t.Run("missing, file, symlink", func(t *testing.T) {
		m := treeMaker{t}
		dir := t.TempDir()
		if err := removeTree(dir + "/missing"); err != nil {
			t.Errorf("missing: %v", err)
		}
		m.file(dir+"/target/keep", "keep", 0o644)
		m.symlink("target", dir+"/link")
		m.file(dir+"/file", "f", 0o644)
		for _, p := range []string{"link", "file"} {
			if err := removeTree(dir + "/" + p); err != nil {
				t.Errorf("%s: %v", p, err)
			}
			if _, err := os.Lstat(dir + "/" + p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s still there: %v", p, err)
			}
		}
		if _, err := os.Stat(dir + "/target/keep"); err != nil {
			t.Errorf("followed the symlink: %v", err)
		}
	})

	t.Run("mount point", func(t *testing.T) {
		m := treeMaker{t}
		dir := t.TempDir()
		mnt := dir + "/tree/mnt"
		m.dir(mnt)
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=64k"); err != nil {
			t.Skipf("cannot mount a tmpfs (%v); needs root", err)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
		m.file(mnt+"/keep", "keep", 0o644)
		err := removeTree(dir + "/tree")
		if err == nil || !strings.Contains(err.Error(), "mount point") {
			t.Fatalf("err %v, want a refusal to cross the mount point", err)
		}
		if _, err := os.Stat(mnt + "/keep"); err != nil {
			t.Fatalf("emptied the mounted file system: %v", err)
		}
	})
}

// TestCopyTreeAsNobody re-runs the copy and remove tests as nobody when the
// tests run as root (as in CI), where EACCES never happens and the
// unreadable-entry test would only be skipped.
func TestCopyTreeAsNobody(t *testing.T) {
	m := treeMaker{t}
	if !runningAsRoot() {
		t.Skipf("already unprivileged (uid %d)", os.Geteuid())
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("SKIPPED, UNPRIVILEGED TESTS DID NOT RUN: setpriv (util-linux) not found, " +
			"so the unreadable-entry tests cannot be run as nobody")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary sits in a directory only root may enter: put a copy
	// and a temporary directory where nobody can use them.
	dir, err := os.MkdirTemp("", "nbs-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeTree(dir) })
	m.mode(dir, 0o755)
	bin := dir + "/sandbox.test"
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := dir + "/tmp"
	m.dir(tmp)
	if err := os.Chown(tmp, 65534, 65534); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		bin, "-test.run=^(TestCopyTree|TestRemoveTree)", "-test.v", "-test.count=1")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "HOME="+tmp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tests as nobody: %v\n%s", err, out)
	}
	for _, want := range []string{"--- PASS: TestCopyTree/unreadable", "--- PASS: TestRemoveTree/closed_directories_and_symlinks"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("tests as nobody: no %q in the output:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "--- ") {
			t.Log("as nobody:", strings.TrimSpace(line))
		}
	}
}
