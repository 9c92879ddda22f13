package diff

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind says how an entry changed.
type Kind byte

// The kinds of Change.
const (
	Added    Kind = 'A'
	Removed  Kind = 'D'
	Modified Kind = 'M'
)

// Entry is what Trees knows of one side of a change.
type Entry struct {
	Mode    fs.FileMode // type and permission bits
	Size    int64
	ModTime time.Time
	Target  string // a symlink's
}

// Change is one entry that differs between the two trees. Path is
// slash-separated and relative to the roots. Old is the zero Entry for
// Added, New for Removed.
type Change struct {
	Path     string
	Kind     Kind
	Old, New Entry
}

// TypeChanged reports whether a Modified entry became another kind of
// file (a file replaced by a directory, say).
func (c Change) TypeChanged() bool { return c.Old.Mode.Type() != c.New.Mode.Type() }

// Options adjusts Trees.
type Options struct {
	// Ignore lists paths (relative, slash-separated) left out of the
	// comparison with everything below them: entries the copy could not
	// include because they were unreadable.
	Ignore []string
}

// Trees compares the directory trees old and new and returns what
// differs, sorted by path. It never follows symlinks. Directories are
// compared by mode and contents, not times (adding a file changes a
// directory's mtime); regular files by type, mode, size and, when their
// modification times differ, by content, so a file only touched is
// unchanged, and the copies nbs makes (which keep mtimes) are compared
// without reading unchanged files. Owners are not compared: the copy
// belongs to the sandbox user. Sockets and devices in old are skipped
// when they are missing from new: a copy cannot hold them. The roots
// themselves are not compared, only what is in them.
func Trees(old, new string, opts Options) ([]Change, error) {
	return TreesOver(Stack{old}, new, opts)
}

// TreesOver is Trees with old the merged view of a stack of layers.
func TreesOver(old Stack, new string, opts Options) ([]Change, error) {
	t := &trees{old: old, new: new, ignore: map[string]bool{}}
	for _, p := range opts.Ignore {
		t.ignore[path.Clean(p)] = true
	}
	if err := t.dir(".", true, true); err != nil {
		return t.out, err
	}
	return t.out, nil
}

type trees struct {
	old    Stack
	new    string
	ignore map[string]bool
	out    []Change
	// overlay: new is an overlay's upper directory (see Overlay), whose
	// whiteout files are not entries.
	overlay bool
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// dir compares the directory rel, which exists in old, new or both.
func (t *trees) dir(rel string, inOld, inNew bool) error {
	var on, nn []string
	var err error
	if inOld {
		if on, err = t.old.names(rel); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
	}
	if inNew {
		if nn, err = readNames(filepath.Join(t.new, rel)); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		if t.overlay {
			nn = slices.DeleteFunc(nn, func(n string) bool { return strings.HasPrefix(n, whiteoutPrefix) })
		}
	}
	for i, j := 0, 0; i < len(on) || j < len(nn); {
		var name string
		var o, n bool
		switch {
		case j >= len(nn) || (i < len(on) && on[i] < nn[j]):
			name, o = on[i], true
			i++
		case i >= len(on) || nn[j] < on[i]:
			name, n = nn[j], true
			j++
		default:
			name, o, n = on[i], true, true
			i++
			j++
		}
		p := path.Join(rel, name)
		if t.ignore[p] {
			continue
		}
		if err := t.entry(p, o, n); err != nil {
			return err
		}
	}
	return nil
}

func lstat(root, rel string) (Entry, error) {
	fi, err := os.Lstat(filepath.Join(root, rel))
	if err != nil {
		return Entry{}, fmt.Errorf("compare: %w", err)
	}
	e := Entry{Mode: fi.Mode(), Size: fi.Size(), ModTime: fi.ModTime()}
	if e.Mode.Type() == fs.ModeSymlink {
		if e.Target, err = os.Readlink(filepath.Join(root, rel)); err != nil {
			return Entry{}, fmt.Errorf("compare: %w", err)
		}
	}
	if !e.Mode.IsRegular() {
		e.Size = 0
	}
	return e, nil
}

// uncopyable: what a copy leaves out.
func uncopyable(m fs.FileMode) bool { return m&(fs.ModeSocket|fs.ModeDevice|fs.ModeCharDevice) != 0 }

func (t *trees) entry(p string, inOld, inNew bool) error {
	var o, n Entry
	var err error
	if inOld {
		if o, err = lstat(t.old.path(p), "."); err != nil {
			return err
		}
	}
	if inNew {
		if n, err = lstat(t.new, p); err != nil {
			return err
		}
	}
	switch {
	case !inNew:
		if uncopyable(o.Mode) {
			return nil
		}
		t.out = append(t.out, Change{Path: p, Kind: Removed, Old: o})
		if o.Mode.IsDir() {
			return t.dir(p, true, false)
		}
		return nil
	case !inOld:
		t.out = append(t.out, Change{Path: p, Kind: Added, New: n})
		if n.Mode.IsDir() {
			return t.dir(p, false, true)
		}
		return nil
	}
	if o.Mode.Type() != n.Mode.Type() {
		if uncopyable(o.Mode) {
			o = Entry{}
		}
		t.out = append(t.out, Change{Path: p, Kind: Modified, Old: o, New: n})
		if o.Mode.IsDir() || n.Mode.IsDir() {
			return t.dir(p, o.Mode.IsDir(), n.Mode.IsDir())
		}
		return nil
	}
	changed := o.Mode != n.Mode
	switch {
	case o.Mode.IsDir():
		if changed {
			t.out = append(t.out, Change{Path: p, Kind: Modified, Old: o, New: n})
		}
		return t.dir(p, true, true)
	case o.Mode.Type() == fs.ModeSymlink:
		changed = changed || o.Target != n.Target
	case o.Mode.IsRegular():
		if !changed && o.Size != n.Size {
			changed = true
		} else if !changed && !o.ModTime.Equal(n.ModTime) {
			same, err := sameContent(t.old.path(p), filepath.Join(t.new, p))
			if err != nil {
				return err
			}
			changed = !same
		}
	}
	if changed {
		t.out = append(t.out, Change{Path: p, Kind: Modified, Old: o, New: n})
	}
	return nil
}

func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, fmt.Errorf("compare: %w", err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, fmt.Errorf("compare: %w", err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		ea, eb := errors.Is(erra, io.EOF) || errors.Is(erra, io.ErrUnexpectedEOF), errors.Is(errb, io.EOF) || errors.Is(errb, io.ErrUnexpectedEOF)
		switch {
		case erra != nil && !ea:
			return false, fmt.Errorf("compare: %w", erra)
		case errb != nil && !eb:
			return false, fmt.Errorf("compare: %w", errb)
		case ea || eb:
			return ea && eb, nil
		}
	}
}

// Summary counts changes.
type Summary struct{ Changed, Added, Removed int }

// Summarize counts the changes by kind.
func Summarize(cs []Change) Summary {
	var s Summary
	for _, c := range cs {
		switch c.Kind {
		case Added:
			s.Added++
		case Removed:
			s.Removed++
		default:
			s.Changed++
		}
	}
	return s
}

// Empty reports whether nothing changed.
func (s Summary) Empty() bool { return s == Summary{} }

// String is "N files changed, M added, K removed".
func (s Summary) String() string {
	noun := "files"
	if s.Changed == 1 {
		noun = "file"
	}
	return fmt.Sprintf("%d %s changed, %d added, %d removed", s.Changed, noun, s.Added, s.Removed)
}

// quote leaves ordinary names alone and quotes Go-style the ones that
// would garble a line of output (newlines, bytes that are not UTF-8).
func quote(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
