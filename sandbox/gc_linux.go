package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/nix-build-shell/nbs/nix"
	"golang.org/x/sys/unix"
)

// What nbs gc may remove, and how it knows that nothing uses it:
//
//   - An nbs session holds a shared flock on the kept directory it
//     entered (LockKept) for its whole life; nbs gc takes the lock
//     exclusively, without waiting, and holds it while it removes the
//     directory, so no session can start on a half-removed one.
//   - A kept copy is a work directory with an .origin; the nbs that made
//     it has let go of its .lock, which nbs gc also takes.
//   - A build still running holds no lock in its build directory, so
//     three signs are read, any one of which keeps the directory: a
//     process whose working directory or root is inside it (the
//     builder runs in /build, a bind of it; seen by device and inode,
//     through any mount namespace; as root also RunningBuilds' builder
//     of it, which nbs list marks "running"); Nix's lock on one of the
//     build's outputs (/nix/store/OUT.lock, flock'ed by Nix's
//     PathLocks, src/libstore/pathlocks.cc, while that output is being
//     built: every kept directory of that output stays); and, for
//     nix-PID-N names, the Nix process PID that made the directory,
//     still running.
//
// A process nbs may not inspect (another user's, when not root) is not
// seen; such a process's directories are not the caller's to remove
// either.

// FindGarbage lists the kept build directories in search, the kept
// copies in copyBases, and the directories named in dirs (either kind),
// each with what uses it. With dirs, only those are listed.
func FindGarbage(search nix.KeptSearch, copyBases []string, dirs []string) ([]Garbage, error) {
	var items []Garbage
	copies := KeptCopies(copyBases)
	if len(dirs) > 0 {
		for _, d := range dirs {
			g, err := garbageAt(d)
			if err != nil {
				return nil, err
			}
			items = append(items, g)
		}
	} else {
		for _, k := range nix.FindKept(search) {
			items = append(items, keptGarbage(k))
		}
		for _, c := range copies {
			items = append(items, copyGarbage(c))
		}
	}
	markBusy(items)
	markStacked(items, copies)
	return items, nil
}

// garbageAt is the kept directory or kept copy dir names. Only names
// Nix gives (nix.ParseBuildDir) and nbs's own work directories qualify:
// an env-vars in some project directory makes it nothing of the kind.
func garbageAt(dir string) (Garbage, error) {
	if c, err := ReadKeptCopy(dir); err == nil && strings.HasPrefix(filepath.Base(c.WorkDir()), workDirPrefix) {
		return copyGarbage(c), nil
	}
	abs := CanonicalDir(dir)
	b, ok := nix.ParseBuildDir(abs)
	if !ok {
		return Garbage{}, fmt.Errorf("%s is neither a build directory Nix kept (nix-build-NAME.drv-N, nix-PID-N, …) nor a copy kept by nbs shell --keep", dir)
	}
	for _, k := range nix.FindKept(nix.KeptSearch{TmpDirs: []string{filepath.Dir(b.Top)}}) {
		if k.Top == b.Top {
			return keptGarbage(k), nil
		}
	}
	if _, err := nix.FindBuildDir(b.Top); err != nil {
		return Garbage{}, fmt.Errorf("%s: %w", dir, err)
	}
	return Garbage{}, fmt.Errorf("%s is not a kept build directory", dir)
}

func keptGarbage(k nix.KeptDir) Garbage {
	top := k.Top
	if top == "" {
		top = k.Dir
	}
	return Garbage{Path: top, Dir: k.Dir, Name: k.Name, Time: k.Time, UID: ownerOf(top)}
}

func copyGarbage(c KeptCopy) Garbage {
	wd := c.WorkDir()
	return Garbage{Path: wd, Dir: c.Dir, Copy: true, Name: filepath.Base(c.Origin), Time: c.Time, UID: ownerOf(wd)}
}

// markStacked sets Under for the items that kept changes (a session kept
// with a copy-on-write view, KeptView) lie on: the kept directory at the
// bottom, and kept changes entered again and kept once more.
func markStacked(items []Garbage, copies []KeptCopy) {
	type ino struct{ dev, ino uint64 }
	id := func(p string) (ino, bool) {
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil {
			return ino{}, false
		}
		return ino{uint64(st.Dev), st.Ino}, true
	}
	under := map[ino][]string{}
	for _, c := range copies {
		if c.View == nil {
			continue
		}
		for _, l := range c.View.Lower {
			p := l.Path
			if l.Format != LayerOrig {
				p = filepath.Dir(p) // the upper/ of a kept work directory
			}
			if i, ok := id(p); ok {
				under[i] = append(under[i], c.WorkDir())
			}
		}
	}
	for i := range items {
		for _, p := range []string{items[i].Path, items[i].Dir} {
			if k, ok := id(p); ok && len(under[k]) > 0 {
				items[i].Under = under[k]
				break
			}
		}
	}
}

func ownerOf(p string) int {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return -1
	}
	return int(st.Uid)
}

// markBusy sets Busy for the items something uses.
func markBusy(items []Garbage) {
	type ino struct{ dev, ino uint64 }
	index := map[ino]int{}
	for i := range items {
		g := &items[i]
		// The builder's working directory is the build directory (a
		// bind of it on /build), not the top holding it.
		for _, p := range []string{g.Path, g.Dir} {
			var st unix.Stat_t
			if unix.Stat(p, &st) == nil {
				index[ino{uint64(st.Dev), st.Ino}] = i
			}
		}
		if g.Copy {
			if locked(filepath.Join(g.Path, ".lock")) {
				g.Busy = "an nbs session holds it"
			}
			continue
		}
		if locked(g.Dir) {
			g.Busy = "an nbs session has entered it"
		} else if out := buildingOutput(g.Dir); out != "" {
			g.Busy = "Nix is building its output " + out
		} else if b, ok := nix.ParseBuildDir(g.Path); ok && b.PID() > 0 && isNixProcess(b.PID()) {
			g.Busy = fmt.Sprintf("the Nix process that made it (pid %d) is still running", b.PID())
		}
	}
	// The builds nbs list marks (running) (root only).
	builds, _ := RunningBuilds()
	for i := range items {
		for _, b := range builds {
			if items[i].Busy == "" && !items[i].Copy && b.Uses(items[i].Dir) {
				items[i].Busy = fmt.Sprintf("the build of %s runs in it (builder pid %d)", b.Name, b.PID)
			}
		}
	}
	// Processes inside: walk up from each one's working directory and
	// root, through its own mount namespace, looking for an item.
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		for _, link := range []string{"cwd", "root"} {
			start := filepath.Join("/proc", p.Name(), link)
			up := start
			var prev ino
			for range 256 {
				var st unix.Stat_t
				if unix.Stat(up, &st) != nil {
					break
				}
				id := ino{uint64(st.Dev), st.Ino}
				if id == prev {
					break // the top of its mount namespace
				}
				if i, ok := index[id]; ok && items[i].Busy == "" {
					items[i].Busy = fmt.Sprintf("process %d (%s) is inside it", pid, procName(pid))
				}
				prev = id
				up += "/.."
			}
		}
	}
}

// locked reports whether someone holds a flock on path (nbs sessions
// hold one on their kept directory and their work directory's .lock).
func locked(path string) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(fd, unix.LOCK_UN)
	return false
}

// buildingOutput is an output of the build in dir that Nix is building
// right now (its lock is held), or "".
func buildingOutput(dir string) string {
	ev, err := nix.ReadEnvVars(filepath.Join(dir, "env-vars"))
	if err != nil {
		return ""
	}
	names, ok := ev.Get("outputs")
	if !ok {
		names = "out"
	}
	for _, o := range strings.Fields(names) {
		p, _ := ev.Get(o)
		if !nix.IsStorePath(p) {
			continue
		}
		// Nix leaves the lock files of failed builds behind, so only
		// the lock tells. The daemon's are root's (0600): a user
		// cannot test them, but neither remove the build user's
		// directories they are about.
		fd, err := unix.Open(p+".lock", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		// Shared, given back at once: Nix locks exclusively.
		err = unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return p
		}
	}
	return ""
}

func isNixProcess(pid int) bool {
	return strings.HasPrefix(procName(pid), "nix")
}

func procName(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// RemoveGarbage removes g unless something has come to use it since it
// was found: a kept directory under its exclusive lock, so that no nbs
// session starts on it half-way.
func RemoveGarbage(g Garbage) error {
	lockPath := g.Dir
	if g.Copy {
		lockPath = filepath.Join(g.Path, ".lock")
	}
	fd, err := unix.Open(lockPath, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(fd)
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			return fmt.Errorf("remove %s: an nbs session has started on it", g.Path)
		}
	}
	if err := removeTree(g.Path); err != nil {
		return err
	}
	return nil
}

// LockKept takes a shared lock on the kept directory dir for as long as
// a session uses it, which tells nbs gc to leave it alone (see
// FindGarbage). It fails when nbs gc is removing dir; a directory nbs
// cannot open (no read permission) goes without the lock.
func LockKept(dir string) (unlock func(), err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return func() {}, nil
	}
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is being removed (nbs gc): %w", dir, err)
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Nlink == 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("%s was removed (nbs gc): %w", dir, syscall.ENOENT)
	}
	return func() { unix.Close(fd) }, nil
}
