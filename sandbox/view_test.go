//go:build linux

package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nix-build-shell/nbs/sandbox/diff"
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

// TestSplitLinks: after a session in a view, the changed files that
// were hard links in what it entered are named, looked up through the
// kept changes above the kept directory; nothing else is.
func TestSplitLinks(t *testing.T) {
	dir, above := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	for _, f := range []string{"src/a", "src/plain", "src/shadowed"} {
		os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644)
	}
	os.Link(filepath.Join(dir, "src/a"), filepath.Join(dir, "src/b"))
	os.Link(filepath.Join(dir, "src/shadowed"), filepath.Join(dir, "src/shadowed2"))
	// Kept changes above replaced src/shadowed: its own file, one link.
	os.MkdirAll(filepath.Join(above, "src"), 0o755)
	os.WriteFile(filepath.Join(above, "src/shadowed"), []byte("new"), 0o644)
	file := diff.Entry{Mode: 0o644}
	cs := []diff.Change{
		{Path: "src/a", Kind: diff.Modified, Old: file, New: file},
		{Path: "src/plain", Kind: diff.Modified, Old: file, New: file},
		{Path: "src/shadowed", Kind: diff.Removed, Old: file},
		{Path: "src/new", Kind: diff.Added, New: file},
		{Path: "src", Kind: diff.Modified, Old: diff.Entry{Mode: fs.ModeDir | 0o755}, New: diff.Entry{Mode: fs.ModeDir | 0o700}},
	}
	got := splitLinks(cs, []Layer{{Path: above}}, dir)
	if want := []string{"/build/src/a"}; !slices.Equal(got, want) {
		t.Errorf("splitLinks = %q, want %q", got, want)
	}
	if got := joinNames([]string{"a", "b", "c", "d", "e"}); got != "a, b, c and 2 more" {
		t.Errorf("joinNames = %q", got)
	}
}
