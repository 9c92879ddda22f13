package diff

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write writes changes (from Trees(old, new, …)) as a patch: a unified
// diff for each text file that changed, was added (from /dev/null) or
// was removed (to /dev/null), under the names a/PATH and b/PATH, so that
// `patch -p1` run in old applies it. Whatever a unified diff cannot say —
// binary files, directories, symlinks, fifos, modes — gets a line of its
// own, which patch skips:
//
//	Binary files a/PATH and b/PATH differ
//	Only in the copy: PATH/
//	Only in the kept directory: PATH -> TARGET
//	Symlink PATH changed: OLD -> NEW
//	Mode of PATH changed: 0644 -> 0755
//	PATH: regular file replaced by directory
func Write(w io.Writer, old, new string, changes []Change) error {
	return WriteOver(w, Stack{old}, new, changes)
}

// WriteOver is Write with old the merged view of a stack of layers.
func WriteOver(w io.Writer, old Stack, new string, changes []Change) error {
	bw := bufio.NewWriter(w)
	for _, c := range changes {
		if err := writeChange(bw, old, new, c); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func describe(e Entry, p string) string {
	switch t := e.Mode.Type(); {
	case t == fs.ModeDir:
		return quote(p) + "/"
	case t == fs.ModeSymlink:
		return quote(p) + " -> " + quote(e.Target)
	case t == fs.ModeNamedPipe:
		return quote(p) + " (fifo)"
	case t.IsRegular():
		if e.Size == 0 {
			return quote(p) + " (empty file)"
		}
		return quote(p)
	default:
		return quote(p) + " (" + typeName(e.Mode) + ")"
	}
}

func typeName(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == fs.ModeDir:
		return "directory"
	case t == fs.ModeSymlink:
		return "symlink"
	case t == fs.ModeNamedPipe:
		return "fifo"
	case t == fs.ModeSocket:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	case t.IsRegular():
		return "regular file"
	}
	return "file"
}

func writeChange(w io.Writer, old Stack, new string, c Change) error {
	p := quote(c.Path)
	switch c.Kind {
	case Added:
		if c.New.Mode.IsRegular() && c.New.Size > 0 {
			return fileDiff(w, "", filepath.Join(new, c.Path), "/dev/null", "b/"+p)
		}
		_, err := fmt.Fprintf(w, "Only in the copy: %s\n", describe(c.New, c.Path))
		return err
	case Removed:
		if c.Old.Mode.IsRegular() && c.Old.Size > 0 {
			return fileDiff(w, old.path(c.Path), "", "a/"+p, "/dev/null")
		}
		_, err := fmt.Fprintf(w, "Only in the kept directory: %s\n", describe(c.Old, c.Path))
		return err
	}
	if c.TypeChanged() {
		_, err := fmt.Fprintf(w, "%s: %s replaced by %s\n", p, typeName(c.Old.Mode), typeName(c.New.Mode))
		return err
	}
	if c.Old.Mode != c.New.Mode {
		if _, err := fmt.Fprintf(w, "Mode of %s changed: %#o -> %#o\n", p, perm(c.Old.Mode), perm(c.New.Mode)); err != nil {
			return err
		}
	}
	switch {
	case c.Old.Mode.Type() == fs.ModeSymlink && c.Old.Target != c.New.Target:
		_, err := fmt.Fprintf(w, "Symlink %s changed: %s -> %s\n", p, quote(c.Old.Target), quote(c.New.Target))
		return err
	case c.Old.Mode.IsRegular():
		return fileDiff(w, old.path(c.Path), filepath.Join(new, c.Path), "a/"+p, "b/"+p)
	}
	return nil
}

// perm is the permission bits with setuid, setgid and sticky, as chmod
// takes them.
func perm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

// fileDiff writes the diff of two files; "" stands for one that does not
// exist.
func fileDiff(w io.Writer, oldPath, newPath, oldName, newName string) error {
	read := func(p string) ([]byte, error) {
		if p == "" {
			return nil, nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("diff: %w", err)
		}
		return b, nil
	}
	a, err := read(oldPath)
	if err != nil {
		return err
	}
	b, err := read(newPath)
	if err != nil {
		return err
	}
	if IsBinary(a) || IsBinary(b) {
		if string(a) != string(b) {
			_, err := fmt.Fprintf(w, "Binary files %s and %s differ\n", oldName, newName)
			return err
		}
		return nil
	}
	_, err = Unified(w, oldName, newName, a, b)
	return err
}
