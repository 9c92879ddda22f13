package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A work directory holds one sandbox's private state:
//
//	$TMPDIR/nbs-XXXXXX/   0700, owned by the sandbox user
//	├── .lock             flock'ed by the nbs that owns it, for its whole life
//	├── .origin           only when kept (--keep): the kept directory copied
//	├── .view             only when a view was kept: what upper/ lies on
//	│                     (KeptView), written before .origin
//	├── root/             becomes "/": the sandbox mounts a tmpfs on it
//	│                     (mountRoot), so it stays empty on disk
//	├── build/            the copy of the kept directory, bound on /build;
//	│                     with a copy-on-write view (view_linux.go), its
//	│                     mount point, and then:
//	├── upper/            the view's changes (overlayfs's upper directory)
//	├── work/             overlayfs's work directory
//	├── lower/            where the child attaches an idmapped kept directory
//	├── tmp/              bound on /tmp
//	└── store/            bound on /nix/store, the input paths bound into it
//
// Without namespaces (modeNoNamespaces) a work directory holds only
// .lock and build/ and sits beside the kept directory; the copy is then
// the build directory itself, at a path of its own.
//
// The lock is how a later nbs knows that the owner is gone (killed with
// SIGKILL, or the machine lost power) and the directory may be removed:
// the kernel drops a flock when its holder dies. A directory with an
// .origin was kept on purpose and is never removed by a later nbs.
type workDir struct {
	path string
	lock *os.File
}

func (w *workDir) root() string  { return filepath.Join(w.path, "root") }
func (w *workDir) build() string { return filepath.Join(w.path, "build") }
func (w *workDir) tmp() string   { return filepath.Join(w.path, "tmp") }
func (w *workDir) store() string { return filepath.Join(w.path, "store") }
func (w *workDir) upper() string { return filepath.Join(w.path, "upper") }
func (w *workDir) work() string  { return filepath.Join(w.path, "work") }
func (w *workDir) lower() string { return filepath.Join(w.path, "lower") }

// newWorkDir creates a locked work directory below base, owned by owner
// when nbs runs as root; bare leaves out root/, tmp/ and store/.
func newWorkDir(base string, owner *Owner, bare bool) (*workDir, error) {
	dir, err := os.MkdirTemp(base, workDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	w := &workDir{path: dir}
	fail := func(err error) (*workDir, error) {
		w.remove()
		return nil, err
	}
	w.lock, err = os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fail(fmt.Errorf("create lock: %w", err))
	}
	if err := unix.Flock(int(w.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(fmt.Errorf("lock %s: %w", w.lock.Name(), err))
	}
	fmt.Fprintf(w.lock, "%d\n", os.Getpid())
	type sub struct {
		path string
		mode os.FileMode
	}
	subs := []sub{{w.root(), 0o755}, {w.tmp(), 0o1777}, {w.store(), 0o1775}}
	if bare {
		subs = nil
	}
	for _, d := range subs {
		if err := os.Mkdir(d.path, 0o700); err != nil {
			return fail(fmt.Errorf("create %s: %w", d.path, err))
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fail(err)
		}
	}
	if owner != nil {
		paths := []string{dir}
		for _, d := range subs {
			paths = append(paths, d.path)
		}
		for _, p := range paths {
			if err := os.Lchown(p, owner.UID, owner.GID); err != nil {
				return fail(fmt.Errorf("chown %s: %w", p, err))
			}
		}
	}
	return w, nil
}

// remove deletes the work directory and releases its lock.
func (w *workDir) remove() error {
	err := removeTree(w.path)
	if w.lock != nil {
		w.lock.Close()
	}
	return err
}

// staleAge is how old an unlocked work directory without a lock file
// must be before it counts as abandoned (nbs creates the lock right after
// the directory).
const staleAge = 10 * time.Minute

// cleanStale removes work directories below base whose owner is gone: a
// directory is taken only if we can lock its .lock, which the kernel
// allows only after the nbs that held it has exited. It returns the
// directories removed.
func cleanStale(base string) ([]string, error) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), workDirPrefix) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		if !looksLikeWorkDir(dir) {
			continue
		}
		if !ownedByUs(dir) {
			continue
		}
		if _, ok := readKept(dir); ok {
			continue // kept with --keep
		}
		lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|syscall.O_NOFOLLOW, 0)
		if errors.Is(err, os.ErrNotExist) {
			if info, err := os.Lstat(dir); err != nil || time.Since(info.ModTime()) < staleAge {
				continue
			}
		} else if err != nil {
			continue
		} else {
			err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err != nil {
				lock.Close()
				continue // its nbs is still running
			}
			defer lock.Close()
		}
		if err := removeTree(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// looksLikeWorkDir: dir holds what newWorkDir puts there and nothing
// else. Other directories whose names start with nbs- (a user's, a
// test's TMPDIR) are never taken for abandoned work directories: nbs
// cleans the kept directory's parent too (modeNoNamespaces), /tmp.
func looksLikeWorkDir(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return false
	}
	for _, e := range entries {
		switch e.Name() {
		case ".lock", originFile, viewFile, "build", "root", "tmp", "store", "upper", "work", "lower":
		default:
			return false
		}
	}
	return true
}

// ownedByUs: an ordinary user removes only their own directories; root
// (sudo nbs, which hands the copy to the caller) may remove anyone's.
func ownedByUs(dir string) bool {
	info, err := os.Lstat(dir)
	if err != nil {
		return false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && (isHostRoot() || int(st.Uid) == os.Geteuid())
}
