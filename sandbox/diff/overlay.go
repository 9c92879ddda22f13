package diff

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Overlay compares the directory lower with the copy-on-write view an
// overlay file system showed of it with upper on top, reading only upper
// and what it covers in lower: a directory upper does not have is
// unchanged, however big it is in lower. The changes are those Trees
// would find between lower and the merged view.
//
// Upper is in the format of the kernel's overlayfs (Documentation/
// filesystems/overlayfs.rst: a whiteout is a character device 0/0, an
// opaque directory has the xattr trusted.overlay.opaque, or
// user.overlay.opaque with userxattr, set to "y") or of fuse-overlayfs
// (a whiteout may also be a file .wh.NAME, an opaque directory may hold
// .wh..wh..opq). A deleted file is reported as Removed, not as something
// added to upper.
func Overlay(lower, upper string, opts Options) ([]Change, error) {
	return OverlayOver(Stack{lower}, upper, opts)
}

// OverlayOver is Overlay with lower the merged view of a stack of
// layers (kept changes over a kept directory).
func OverlayOver(lower Stack, upper string, opts Options) ([]Change, error) {
	t := &trees{old: lower, new: upper, ignore: map[string]bool{}, overlay: true}
	for _, p := range opts.Ignore {
		t.ignore[path.Clean(p)] = true
	}
	if err := t.overlayDir("."); err != nil {
		return t.out, err
	}
	return t.out, nil
}

// whiteoutPrefix marks fuse-overlayfs's whiteout files (and its opaque
// marker whiteoutPrefix+whiteoutPrefix+".opq").
const whiteoutPrefix = ".wh."

// isWhiteout reports whether the upper entry fi hides the lower one.
func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

// isOpaque reports whether the upper directory dir hides the lower one
// of the same name entirely.
func isOpaque(dir string) bool {
	buf := make([]byte, 8)
	for _, name := range []string{"user.overlay.opaque", "trusted.overlay.opaque", "user.fuseoverlayfs.opaque"} {
		if n, err := unix.Lgetxattr(dir, name, buf); err == nil && n > 0 && buf[0] == 'y' {
			return true
		}
	}
	_, err := os.Lstat(filepath.Join(dir, whiteoutPrefix+whiteoutPrefix+".opq"))
	return err == nil
}

// overlayDir compares rel, a directory in both lower and the view that
// upper holds too, not opaque: only what upper has in it can differ.
func (t *trees) overlayDir(rel string) error {
	names, err := readNames(filepath.Join(t.new, rel))
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	// fuse-overlayfs's whiteout files stand for the names they hide, in
	// the order of names.
	whiteouts := map[string]bool{}
	var merged []string
	for _, name := range names {
		if hidden, ok := strings.CutPrefix(name, whiteoutPrefix); ok {
			if !strings.HasPrefix(hidden, whiteoutPrefix) {
				whiteouts[hidden] = true
				merged = append(merged, hidden)
			}
			continue
		}
		merged = append(merged, name)
	}
	sort.Strings(merged)
	for i, name := range merged {
		if i > 0 && merged[i-1] == name {
			continue
		}
		p := path.Join(rel, name)
		if t.ignore[p] {
			continue
		}
		if whiteouts[name] {
			if _, err := t.old.lstat(p); err == nil {
				if err := t.entry(p, true, false); err != nil {
					return err
				}
			}
			continue
		}
		up, err := os.Lstat(filepath.Join(t.new, p))
		if err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		low, lerr := t.old.lstat(p)
		inOld := lerr == nil
		if lerr != nil && !errors.Is(lerr, fs.ErrNotExist) {
			return fmt.Errorf("compare: %w", lerr)
		}
		switch {
		case isWhiteout(up):
			if inOld {
				err = t.entry(p, true, false)
			}
		case inOld && low.IsDir() && up.IsDir() && !isOpaque(filepath.Join(t.new, p)):
			// A directory merged from both: its own mode, then what
			// upper changed in it.
			if low.Mode() != up.Mode() {
				o, _ := lstat(t.old.path(p), ".")
				n, _ := lstat(t.new, p)
				t.out = append(t.out, Change{Path: p, Kind: Modified, Old: o, New: n})
			}
			err = t.overlayDir(p)
		default:
			// Upper's entry replaces lower's whole (an opaque directory
			// hides everything lower had in it).
			err = t.entry(p, inOld, true)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
