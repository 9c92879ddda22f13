package sandbox

// Kept changes as layers: a session kept with a copy-on-write view
// leaves its upper directory (KeptView), and entering it again (nbs
// shell KEPT) shows the kept directory with those changes on top. A view
// stacks them (lowerdir=UPPER:KEPT_DIR, viewSpec.Above); a copy applies
// them to the copy of the kept directory, as an overlay would show them
// (Documentation/filesystems/overlayfs.rst, "whiteouts and opaque
// directories").

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// beneath opens rel below the directory root without following any
// symlink: the upper directory and the copy belong to the sandbox user,
// and nbs may be root.
func beneath(root int, rel string, flags int) (int, error) {
	return unix.Openat2(root, rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// applyLayer makes the copy dst what an overlay of upper (in format, see
// KeptView) over it shows: a whiteout removes, an opaque directory
// replaces, anything else replaces the entry of its name. Sockets and
// devices are left out, as copyTree leaves them out. With chown, what it
// makes belongs to chown.
//
// upper must belong to owner (keptChanges checked it; checked again on
// the descriptor, which no rename can change).
func applyLayer(upper, format string, owner int, dst string, chown *Owner) error {
	ufd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open kept changes %s: %w", upper, err)
	}
	defer unix.Close(ufd)
	var st unix.Stat_t
	if err := unix.Fstat(ufd, &st); err != nil {
		return fmt.Errorf("stat kept changes %s: %w", upper, err)
	}
	if int(st.Uid) != owner {
		return fmt.Errorf("kept changes %s: owned by %d, not %d", upper, st.Uid, owner)
	}
	dfd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dst, err)
	}
	defer unix.Close(dfd)
	a := &applier{upper: ufd, dst: dfd, fuse: format == LayerFUSE, chown: chown}
	if err := a.dir("."); err != nil {
		return fmt.Errorf("apply the kept changes %s to %s: %w", upper, dst, err)
	}
	return nil
}

type applier struct {
	upper, dst int
	fuse       bool
	chown      *Owner
}

// isWhiteoutStat: a character device 0/0 hides the lower entry.
func isWhiteoutStat(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// opaque reports whether the upper directory fd hides the lower one
// (the markers diff.Overlay reads).
func (a *applier) opaque(fd int) bool {
	buf := make([]byte, 8)
	for _, name := range []string{"user.overlay.opaque", "trusted.overlay.opaque", "user.fuseoverlayfs.opaque"} {
		if n, err := unix.Fgetxattr(fd, name, buf); err == nil && n > 0 && buf[0] == 'y' {
			return true
		}
	}
	if !a.fuse {
		return false
	}
	var st unix.Stat_t
	return unix.Fstatat(fd, ".wh..wh..opq", &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// dir applies the upper directory rel, which dst has as a directory.
func (a *applier) dir(rel string) error {
	fd, err := beneath(a.upper, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	names, err := readNames(fd, make([]byte, direntBufSize))
	unix.Close(fd)
	if err != nil {
		return err
	}
	for _, name := range names {
		p := path.Join(rel, name)
		if hidden, ok := strings.CutPrefix(name, ".wh."); ok && a.fuse {
			if !strings.HasPrefix(hidden, ".wh.") {
				if err := a.remove(path.Join(rel, hidden)); err != nil {
					return err
				}
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(a.upper, p, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if isWhiteoutStat(&st) {
			if err := a.remove(p); err != nil {
				return err
			}
			continue
		}
		if err := a.entry(p, &st); err != nil {
			return err
		}
	}
	return nil
}

// remove removes rel from dst, whatever it is; a missing entry is fine.
func (a *applier) remove(rel string) error {
	pfd, err := beneath(a.dst, path.Dir(rel), unix.O_PATH|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	// Through the descriptor: no component of the path is looked up again.
	return removeTree(fmt.Sprintf("/proc/self/fd/%d/%s", pfd, path.Base(rel)))
}

// entry makes rel in dst what it is in upper (st).
func (a *applier) entry(rel string, st *unix.Stat_t) error {
	pfd, err := beneath(a.dst, path.Dir(rel), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	name := path.Base(rel)
	var cur unix.Stat_t
	exists := unix.Fstatat(pfd, name, &cur, unix.AT_SYMLINK_NOFOLLOW) == nil
	typ := st.Mode & unix.S_IFMT
	if typ == unix.S_IFDIR {
		ufd, err := beneath(a.upper, rel, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		opaque := a.opaque(ufd)
		unix.Close(ufd)
		if exists && (cur.Mode&unix.S_IFMT != unix.S_IFDIR || opaque) {
			if err := a.remove(rel); err != nil {
				return err
			}
			exists = false
		}
		if !exists {
			if err := unix.Mkdirat(pfd, name, 0o700); err != nil {
				return err
			}
		}
		if err := a.dir(rel); err != nil {
			return err
		}
		return a.attrs(pfd, name, st)
	}
	if exists {
		if err := a.remove(rel); err != nil {
			return err
		}
	}
	switch typ {
	case unix.S_IFREG:
		if err := a.file(rel, pfd, name); err != nil {
			return err
		}
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(a.upper, rel, buf)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(buf[:n]), pfd, name); err != nil {
			return err
		}
	case unix.S_IFIFO:
		if err := unix.Mkfifoat(pfd, name, 0o600); err != nil {
			return err
		}
	default:
		return nil // a socket or device: no copy holds one
	}
	return a.attrs(pfd, name, st)
}

// file copies the regular file rel of upper to name in pfd.
func (a *applier) file(rel string, pfd int, name string) error {
	sfd, err := beneath(a.upper, rel, unix.O_RDONLY)
	if err != nil {
		return err
	}
	src := os.NewFile(uintptr(sfd), rel)
	defer src.Close()
	dfd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	dst := os.NewFile(uintptr(dfd), name)
	defer dst.Close()
	// A reflink where the file system has them, else the bytes.
	if unix.IoctlFileClone(dfd, sfd) == nil {
		return nil
	}
	_, err = io.Copy(dst, src)
	return err
}

// attrs gives name in pfd the mode, times and (with chown) owner of st.
func (a *applier) attrs(pfd int, name string, st *unix.Stat_t) error {
	if a.chown != nil {
		if err := unix.Fchownat(pfd, name, a.chown.UID, a.chown.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		// fchmodat follows symlinks; name is none.
		if err := unix.Fchmodat(pfd, name, st.Mode&0o7777, 0); err != nil && !errors.Is(err, unix.EPERM) {
			return err
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// keptChanges reads dir as kept changes (a work directory holding a
// KeptView, the path nbs shell --keep printed): it returns them and the
// layers above the kept directory, after checking that the layers below
// are still what they were. A dir that is not kept changes returns nil.
func keptChanges(dir string) (*KeptCopy, []Layer, error) {
	k, err := ReadKeptCopy(dir)
	if err != nil || k.View == nil {
		return nil, nil, nil
	}
	if err := k.View.Check(); err != nil {
		return nil, nil, fmt.Errorf("%s holds changes that can no longer be shown: %w", k.Dir, err)
	}
	above := k.View.Stack()[:len(k.View.Lower)]
	// The identity of the changes themselves, for the record a later
	// --keep leaves.
	if above[0], err = layerOf(k.View.Upper, k.View.Format); err != nil {
		return nil, nil, err
	}
	// The record belongs to whoever kept the session, who may have
	// written anything in it: as root (sudo), nbs stacks or copies only
	// directories of theirs, so that no record makes it show another
	// user's files.
	var rec unix.Stat_t
	if err := unix.Lstat(path.Join(k.WorkDir(), viewFile), &rec); err != nil {
		return nil, nil, err
	}
	for i := range above {
		var st unix.Stat_t
		if err := unix.Lstat(above[i].Path, &st); err != nil {
			return nil, nil, fmt.Errorf("%s holds changes that can no longer be shown: %w", k.Dir, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || (isHostRoot() && st.Uid != rec.Uid) {
			return nil, nil, fmt.Errorf("%s: the layer %s is not a directory of %d, who kept the changes", k.Dir, above[i].Path, rec.Uid)
		}
		above[i].owner = int(st.Uid)
	}
	return &k, above, nil
}

// layeredPath is the host path of rel in the merged view of above over
// dir: the topmost layer that has it (a whiteout hides it: then dir's,
// which does not matter for the files nbs reads before entering).
func layeredPath(above []Layer, dir, rel string) string {
	for _, l := range above {
		p := path.Join(l.Path, rel)
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return path.Join(dir, rel)
}

// lockChanges takes a shared lock on the .lock of the kept changes in
// the work directory wd while a session stacks them, which nbs gc sees
// as in use (markBusy, RemoveGarbage take it exclusively).
func lockChanges(wd string) (unlock func(), err error) {
	fd, err := unix.Open(path.Join(wd, ".lock"), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return func() {}, nil
	}
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is being removed (nbs gc): %w", wd, err)
	}
	return func() { unix.Close(fd) }, nil
}
