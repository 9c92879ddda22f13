package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// workDirPrefix starts the name of every work directory (workdir_linux.go).
const workDirPrefix = "nbs-"

// originFile, next to the .lock of a work directory kept with --keep,
// names the kept build directory the copy was made from (one line,
// absolute, symlinks resolved). Its presence also marks the work
// directory as kept: CleanStale leaves it alone.
const originFile = ".origin"

// viewFile, next to the .origin of a session kept with a copy-on-write
// view, records what its changes lie on: one line a layer, top first,
// "layer FORMAT DEV INO MTIME_NS PATH" (FORMAT: kernel or fuse, the
// overlay that wrote an upper layer; orig for the kept directory, which
// comes last). The identity (device, inode, the directory's mtime) is
// how a later nbs sees that a layer was removed or replaced.
const viewFile = ".view"

// KeptCopy is what nbs shell --keep kept of a session: a copy of the
// kept build directory, or the changes a copy-on-write view made to it.
type KeptCopy struct {
	// Dir is the copy: the directory that was /build; for changes,
	// the work directory holding them.
	Dir string
	// Origin is the kept build directory it was copied from (or the
	// kept session entered, itself kept changes).
	Origin string
	// Time is when the sandbox ended.
	Time time.Time
	// View, for changes: what they lie on; nil for a copy.
	View *KeptView
}

// WorkDir is the work directory that holds what was kept.
func (k KeptCopy) WorkDir() string {
	if k.View != nil {
		return k.Dir
	}
	return filepath.Dir(k.Dir)
}

// KeptView is the record of changes kept from a copy-on-write view.
type KeptView struct {
	// Upper holds the session's changes, in Format (an overlay's upper
	// directory: a deletion is a whiteout).
	Upper  string
	Format string
	// Lower is what Upper lies on, top first; the last is the kept
	// build directory.
	Lower []Layer
}

// Layer is one directory of a view's stack, with its identity when the
// session started.
type Layer struct {
	Path   string
	Format string // LayerKernel, LayerFUSE, or LayerOrig for the kept directory
	Dev    uint64
	Ino    uint64
	Mtime  int64 // ns
	// owner is an upper layer's owner when it was checked (keptChanges).
	owner int
}

// The formats of a layer: an upper directory the kernel's overlayfs or
// fuse-overlayfs wrote, or the kept build directory itself.
const (
	LayerKernel = "kernel"
	LayerFUSE   = "fuse"
	LayerOrig   = "orig"
)

// layerOf is dir as a layer of format, with its identity now.
func layerOf(dir, format string) (Layer, error) {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return Layer{}, fmt.Errorf("stat %s: %w", dir, err)
	}
	return Layer{Path: dir, Format: format, Dev: uint64(st.Dev), Ino: uint64(st.Ino), Mtime: st.Mtim.Nano()}, nil
}

// Check says whether the layer is still the directory it was: a kept
// directory removed, or removed and made again, or changed at its top,
// no longer matches the changes kept over it.
func (l Layer) Check() error {
	now, err := layerOf(l.Path, l.Format)
	switch {
	case err != nil:
		return fmt.Errorf("%s, which the kept changes lie on, is gone: %w", l.Path, err)
	case now.Dev != l.Dev || now.Ino != l.Ino:
		return fmt.Errorf("%s, which the kept changes lie on, was replaced (another directory is at its path now)", l.Path)
	case now.Mtime != l.Mtime:
		return fmt.Errorf("%s, which the kept changes lie on, was changed since (its modification time is not the recorded one)", l.Path)
	}
	return nil
}

// Orig is the kept build directory at the bottom of the stack.
func (v *KeptView) Orig() Layer { return v.Lower[len(v.Lower)-1] }

// Check checks every layer below the changes.
func (v *KeptView) Check() error {
	for _, l := range v.Lower {
		if err := l.Check(); err != nil {
			return err
		}
	}
	return nil
}

// Stack is the view's layers as a lower stack for another session:
// Upper on top of Lower.
func (v *KeptView) Stack() []Layer {
	return append([]Layer{{Path: v.Upper, Format: v.Format}}, v.Lower...)
}

// CanonicalDir is the form in which an origin is recorded and compared:
// absolute, cleaned, symlinks resolved where possible.
func CanonicalDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return filepath.Clean(dir)
}

// KeptCopies lists the copies kept in the work directory bases (nbs
// creates work directories in $TMPDIR), newest first.
func KeptCopies(bases []string) []KeptCopy {
	var out []KeptCopy
	seen := map[string]bool{}
	for _, base := range bases {
		b := CanonicalDir(base)
		if seen[b] {
			continue
		}
		seen[b] = true
		entries, err := os.ReadDir(b)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), workDirPrefix) {
				continue
			}
			if k, ok := readKept(filepath.Join(b, e.Name())); ok {
				out = append(out, k)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out
}

// ReadKeptCopy reads the copy dir, given as the copy itself (the path nbs
// shell --keep printed) or as its work directory.
func ReadKeptCopy(dir string) (KeptCopy, error) {
	dir = CanonicalDir(dir)
	for _, wd := range []string{filepath.Dir(dir), dir} {
		if k, ok := readKept(wd); ok {
			return k, nil
		}
	}
	return KeptCopy{}, fmt.Errorf("read kept copy: %s is not a copy kept by nbs shell --keep (no %s next to it)", dir, originFile)
}

func readKept(workDir string) (KeptCopy, bool) {
	p := filepath.Join(workDir, originFile)
	info, err := os.Lstat(p)
	if err != nil || !info.Mode().IsRegular() {
		return KeptCopy{}, false
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return KeptCopy{}, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return KeptCopy{}, false
	}
	origin, err := parseRecordPath(strings.TrimSuffix(string(b), "\n"))
	if err != nil || !filepath.IsAbs(origin) {
		return KeptCopy{}, false
	}
	k := KeptCopy{Dir: filepath.Join(workDir, "build"), Origin: origin, Time: info.ModTime()}
	if _, err := os.Lstat(filepath.Join(workDir, viewFile)); err == nil {
		v, err := readView(workDir)
		if err != nil {
			return KeptCopy{}, false
		}
		k.Dir, k.View = workDir, v
	}
	return k, true
}

// readView reads the record of kept changes in workDir.
func readView(workDir string) (*KeptView, error) {
	f, err := os.OpenFile(filepath.Join(workDir, viewFile), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<16))
	if err != nil {
		return nil, err
	}
	v, err := parseView(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(workDir, viewFile), err)
	}
	v.Upper = filepath.Join(workDir, "upper")
	return v, nil
}

// parseView reads a view record (see viewFile): the format of the
// changes' own upper directory, then the layers below, top first.
func parseView(s string) (*KeptView, error) {
	v := &KeptView{}
	for i, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if i == 0 {
			f, ok := strings.CutPrefix(line, "upper ")
			if !ok || (f != LayerKernel && f != LayerFUSE) {
				return nil, fmt.Errorf("line 1 is not \"upper kernel\" or \"upper fuse\": %q", line)
			}
			v.Format = f
			continue
		}
		var l Layer
		f := strings.SplitN(line, " ", 6)
		if len(f) != 6 || f[0] != "layer" {
			return nil, fmt.Errorf("line %d is not \"layer FORMAT DEV INO MTIME PATH\": %q", i+1, line)
		}
		l.Format = f[1]
		rest, err0 := parseRecordPath(f[5])
		var err1, err2, err3 error
		l.Dev, err1 = strconv.ParseUint(f[2], 10, 64)
		l.Ino, err2 = strconv.ParseUint(f[3], 10, 64)
		l.Mtime, err3 = strconv.ParseInt(f[4], 10, 64)
		if err := errors.Join(err0, err1, err2, err3); err != nil || !filepath.IsAbs(rest) || (l.Format != LayerKernel && l.Format != LayerFUSE && l.Format != LayerOrig) {
			return nil, fmt.Errorf("line %d is not \"layer FORMAT DEV INO MTIME PATH\": %q", i+1, line)
		}
		l.Path = rest
		v.Lower = append(v.Lower, l)
	}
	if len(v.Lower) == 0 || v.Orig().Format != LayerOrig {
		return nil, errors.New("no kept build directory at the bottom")
	}
	for _, l := range v.Lower[:len(v.Lower)-1] {
		if l.Format == LayerOrig {
			return nil, errors.New("a kept build directory above another layer")
		}
	}
	return v, nil
}

// formatView is the record parseView reads.
func formatView(v *KeptView) string {
	var b strings.Builder
	fmt.Fprintf(&b, "upper %s\n", v.Format)
	for _, l := range v.Lower {
		fmt.Fprintf(&b, "layer %s %d %d %d %s\n", l.Format, l.Dev, l.Ino, l.Mtime, recordPath(l.Path))
	}
	return b.String()
}

// recordPath is a path as a record line holds it: as it is, or, when it
// holds a newline (a record is one path a line) or could be taken for a
// quoted one, quoted as Go does (parseRecordPath). An absolute path
// never starts with a quote, so records written before need no change.
func recordPath(p string) string {
	if strings.ContainsAny(p, "\n\r") || strings.HasPrefix(p, `"`) {
		return strconv.Quote(p)
	}
	return p
}

// parseRecordPath reads what recordPath wrote.
func parseRecordPath(s string) (string, error) {
	if strings.HasPrefix(s, `"`) {
		return strconv.Unquote(s)
	}
	return s, nil
}

// writeOrigin records origin in the work directory dir, marking it kept.
func writeOrigin(dir, origin string, owner *Owner) error {
	return writeRecord(dir, originFile, recordPath(origin)+"\n", owner)
}

// writeRecord writes a record of a kept work directory.
func writeRecord(dir, name, content string, owner *Owner) error {
	// The work directory belongs to the sandbox user, who could have
	// planted a symlink here; nbs may be root: create, never follow.
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("mark copy as kept: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		return fmt.Errorf("mark copy as kept: %w", err)
	}
	if owner != nil {
		if err := f.Chown(owner.UID, owner.GID); err != nil {
			return fmt.Errorf("mark copy as kept: %w", err)
		}
	}
	return nil
}
