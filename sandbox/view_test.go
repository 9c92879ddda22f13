//go:build linux

package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestChooseView(t *testing.T) {
	me, build := Owner{1001, 1001}, Owner{999, 994}
	for _, c := range []struct {
		name   string
		asked  string
		root   bool
		owner  Owner
		mode   string
		idmap  bool
		noFUSE bool
		err    string
	}{
		{name: "own dir", owner: me, mode: EntryOverlay},
		{name: "build user's, unprivileged", owner: build, mode: EntryFUSE},
		{name: "own dir, another group", owner: Owner{1001, 994}, mode: EntryFUSE},
		{name: "build user's, unprivileged, no FUSE", owner: build, noFUSE: true, mode: EntryCopy},
		{name: "fuse asked, own dir", asked: EntryFUSE, owner: me, mode: EntryFUSE},
		{name: "fuse asked, unavailable", asked: EntryFUSE, owner: build, noFUSE: true, err: "no FUSE view (no /dev/fuse)"},
		{name: "build user's, root", root: true, owner: build, mode: EntryOverlay, idmap: true},
		{name: "copy asked", asked: EntryCopy, root: true, owner: build, mode: EntryCopy},
		{name: "overlay asked, root", asked: EntryOverlay, root: true, owner: build, mode: EntryOverlay, idmap: true},
		{name: "overlay asked, unavailable", asked: EntryOverlay, owner: build, noFUSE: true, err: "not available here"},
		{name: "unknown", asked: "9p", owner: me, err: `unknown entry mode "9p"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var fuse error
			if c.noFUSE {
				fuse = errors.New("no /dev/fuse")
			}
			got, err := chooseView(c.asked, c.root, c.owner, me, fuse)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil || got.mode != c.mode || got.idmap != c.idmap || got.why == "" {
				t.Errorf("got %+v, %v; want mode %s idmap %v with a reason", got, err, c.mode, c.idmap)
			}
		})
	}
}

// TestUnlikeACopy: a view is refused where it would show what a copy
// does not: sockets, devices, hard links.
func TestUnlikeACopy(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src/deep"), 0o755)
	os.WriteFile(filepath.Join(dir, "src/deep/a"), []byte("a"), 0o644)
	os.Symlink("a", filepath.Join(dir, "src/deep/l"))
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	if why := unlikeACopy(dir, nil); why != "" {
		t.Errorf("plain tree refused: %s", why)
	}
	os.Link(filepath.Join(dir, "src/deep/a"), filepath.Join(dir, "b"))
	if why := unlikeACopy(dir, nil); !strings.Contains(why, "hard links") {
		t.Errorf("hard links: %q", why)
	}
	os.Remove(filepath.Join(dir, "b"))
	me := Owner{os.Getuid(), os.Getgid()}
	if why := unlikeACopy(dir, &me); why != "" {
		t.Errorf("a tree of our own refused for the overlay: %s", why)
	}
	if why := unlikeACopy(dir, &Owner{me.UID + 1, me.GID}); !strings.Contains(why, "owned by") {
		t.Errorf("another owner: %q", why)
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: filepath.Join(dir, "src/sock")}); err != nil {
		t.Fatal(err)
	}
	if why := unlikeACopy(dir, nil); !strings.Contains(why, "src/sock") {
		t.Errorf("socket: %q", why)
	}
}
