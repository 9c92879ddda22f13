package sandbox

// How copyTree works
//
// One goroutine, the walker, goes through src depth first without
// recursion and does everything that touches directories: it reads their
// entries, stats each one, creates directories, symlinks and fifos, links
// hard links, and opens every regular file on both sides. The open pair goes
// to Workers goroutines that move the data (FICLONE, else copy_file_range,
// else read/write) and then set the file's owner, mode and times through the
// descriptor. A directory gets its owner, mode and times when the walker
// leaves it: by then every entry in it exists, and data written into its
// files later does not change it. Until then it is 0700 so that we can fill
// it whatever its final mode.
//
// Every lookup is relative to an open directory and made with O_NOFOLLOW or
// AT_SYMLINK_NOFOLLOW, so no symlink is followed at any level, src cannot
// be redirected by a symlink planted inside it, and no path longer than
// PATH_MAX ever reaches the kernel.
//
// Deep trees. The walker keeps a chain of frames from the top of the tree
// down to the directory it is in. Only the deepest maxOpenDirs frames hold
// descriptors; when the walk goes deeper, the shallowest of them is closed.
// Coming back up into a closed frame reopens it as ".." of its child — one
// openat, and ".." is never a symlink — and checks its device and inode
// against those recorded on the way down, as fts(3) does, so a directory
// moved while we copy is an error rather than a wrong copy. A tree 10 000
// levels deep thus costs 2*maxOpenDirs descriptors for directories (src and
// dst) plus two per file in flight, never 20 000. Re-walking down from the
// top instead would make deep trees quadratic; keeping every level open
// would run into RLIMIT_NOFILE. removeTree uses the same chain.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	maxOpenDirs    = 32
	defaultWorkers = 4
	copyChunk      = 8 << 20 // data copied between two looks at ctx
	rwBufSize      = 1 << 20 // buffer of the read/write fallback
	progressEvery  = 100 * time.Millisecond
	direntBufSize  = 32 << 10
)

// copyTree copies the directory src into dst, which must not exist and is
// created with src's mode. It never modifies src and never follows a
// symlink inside it (src itself must not be a symlink either).
//
// Directories, regular files, symlinks and fifos are recreated with their
// mode (setuid, setgid and sticky bits too when the kernel lets us; if it
// refuses them the other bits are still set), access and modification
// times to the nanosecond and, with opts.Chown, owner. Files sharing an
// inode in src share one in dst. Sockets and device nodes are left out and
// listed in the report's Skipped.
//
// Entries that cannot be read (EACCES) do not stop the copy: everything
// else is copied and the error is then an *unreadableError listing them.
// Any other error stops the copy, as does cancelling ctx; the partial copy
// is left for the caller to remove with removeTree. The report counts what
// was made, also when there is an error.
func copyTree(ctx context.Context, src, dst string, opts copyOptions) (copyReport, error) {
	return newCopier(opts).run(ctx, src, dst)
}

// fileID identifies an inode.
type fileID struct{ dev, ino uint64 }

func idOf(st *unix.Stat_t) fileID { return fileID{uint64(st.Dev), uint64(st.Ino)} }

// node is a directory's place in the tree, kept for messages and to find
// again the directory that holds the first name of a hard-linked file.
type node struct {
	parent *node // nil at the top
	name   string
	depth  int
}

// rel returns the path of name in n relative to the top of the tree.
func (n *node) rel(name string) string {
	parts := make([]string, 0, n.depth+1)
	if name != "" {
		parts = append(parts, name)
	}
	for ; n.parent != nil; n = n.parent {
		parts = append(parts, n.name)
	}
	if len(parts) == 0 {
		return "."
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, "/")
}

// frame is a directory on the chain from the top of a walk to where it is.
type frame struct {
	node  *node
	fds   []int    // one per tree walked in step (src, dst); -1 while closed
	ids   []fileID // what fds[i] must be when reopened
	names []string // entries not yet visited
	st    unix.Stat_t
}

func (f *frame) closeFDs() {
	for i, fd := range f.fds {
		if fd >= 0 {
			unix.Close(fd)
			f.fds[i] = -1
		}
	}
}

// dirChain is the chain of frames; see "Deep trees" above.
type dirChain struct {
	frames []*frame
	open   int // frames[open:] hold descriptors
}

func (c *dirChain) top() *frame { return c.frames[len(c.frames)-1] }

func (c *dirChain) push(f *frame) {
	c.frames = append(c.frames, f)
	for len(c.frames)-c.open > maxOpenDirs {
		c.frames[c.open].closeFDs()
		c.open++
	}
}

// pop drops the top frame and closes its descriptors, first reopening the
// new top through ".." if it had been closed.
func (c *dirChain) pop() error {
	n := len(c.frames) - 1
	f := c.frames[n]
	c.frames[n] = nil
	c.frames = c.frames[:n]
	defer f.closeFDs()
	if n == 0 || c.open < n {
		if n == 0 {
			c.open = 0
		}
		return nil
	}
	p := c.frames[n-1]
	for i, fd := range f.fds {
		pfd, err := unix.Openat(fd, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("reopen: %w", err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(pfd, &st); err != nil {
			unix.Close(pfd)
			return fmt.Errorf("reopen: %w", err)
		}
		if idOf(&st) != p.ids[i] {
			unix.Close(pfd)
			return errors.New("reopen: directory was moved")
		}
		p.fds[i] = pfd
	}
	c.open = n - 1
	return nil
}

func (c *dirChain) closeAll() {
	for _, f := range c.frames {
		f.closeFDs()
	}
	c.frames = nil
	c.open = 0
}

// readNames returns the entries of the directory fd, sorted so that a copy
// is made in the same order every time (which name of a hard-linked file is
// copied and which are linked does not depend on the file system's hashing).
func readNames(fd int, buf []byte) ([]string, error) {
	var names []string
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	sort.Strings(names)
	return names, nil
}

// futimens sets the access and modification times of fd to those of st.
// unix.UtimesNanoAt wants a path; utimensat with a NULL path is what
// futimens(3) is in glibc and works on any kernel, unlike AT_EMPTY_PATH.
func futimens(fd int, st *unix.Stat_t) error {
	ts := [2]unix.Timespec{st.Atim, st.Mtim}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// fchmodKeep sets mode, and if the kernel refuses the setuid, setgid or
// sticky bit (EPERM), sets the other bits.
func fchmodKeep(fd int, mode uint32) error {
	err := unix.Fchmod(fd, mode)
	if err == unix.EPERM && mode&(unix.S_ISUID|unix.S_ISGID|unix.S_ISVTX) != 0 {
		err = unix.Fchmod(fd, mode&0o777)
	}
	return err
}

// linkTarget is where the first name of a hard-linked inode was made in dst.
type linkTarget struct {
	dir  *node
	name string
}

// fileJob is a regular file opened on both sides, waiting for a worker.
type fileJob struct {
	src, dst int
	st       unix.Stat_t
	dir      *node
	name     string
}

func (j *fileJob) close() {
	unix.Close(j.src)
	unix.Close(j.dst)
}

type copier struct {
	opts    copyOptions
	workers int
	euid    int
	src     string

	ctx    context.Context
	cancel context.CancelFunc

	// Owned by the walker.
	chain      dirChain
	dstTop     int // dst, open for as long as the copy runs
	links      map[fileID]linkTarget
	report     copyReport
	unreadable []string
	unreadErr  error
	dirent     []byte

	jobs         chan fileJob
	files, bytes atomic.Int64
	noClone      atomic.Bool // FICLONE unsupported here
	noCopyRange  atomic.Bool // copy_file_range unsupported here

	mu  sync.Mutex
	err error // the first error, which stops the copy

	// For tests: the data chunk size and hooks called after each chunk and
	// before each entry the walker visits.
	chunk       int
	afterChunk  func()
	beforeEntry func()
}

func newCopier(opts copyOptions) *copier {
	w := opts.Workers
	if w <= 0 {
		w = defaultWorkers
	}
	return &copier{opts: opts, workers: w, euid: os.Geteuid(), chunk: copyChunk, dstTop: -1}
}

// fail builds the error for an operation op on the entry rel of src.
func (c *copier) fail(rel, op string, err error) error {
	if rel == "." {
		return fmt.Errorf("copy %s: %s: %w", c.src, op, err)
	}
	return fmt.Errorf("copy %s: %s: %w", quoteName(shortPath(rel)), op, err)
}

func (c *copier) skip(rel, what string) {
	c.report.Skipped = append(c.report.Skipped, quoteName(rel)+" ("+what+")")
}

// setErr records the first error and stops everything.
func (c *copier) setErr(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.cancel()
}

func (c *copier) firstErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *copier) run(parent context.Context, src, dst string) (copyReport, error) {
	if err := parent.Err(); err != nil {
		return copyReport{}, fmt.Errorf("copy %s: %w", src, err)
	}
	c.src = src
	c.dirent = make([]byte, direntBufSize)
	c.links = make(map[fileID]linkTarget)

	// Open and read src before making dst, so that a src we cannot read
	// at all leaves nothing behind.
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return copyReport{}, fmt.Errorf("copy %s: %w", src, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return copyReport{}, fmt.Errorf("copy %s: %w", src, unix.ENOTDIR)
	}
	sfd, err := c.openSrc(unix.AT_FDCWD, src, unix.O_DIRECTORY, &st)
	if err != nil {
		return copyReport{}, fmt.Errorf("copy %s: open: %w", src, err)
	}
	names, err := readNames(sfd, c.dirent)
	if err != nil {
		unix.Close(sfd)
		return copyReport{}, fmt.Errorf("copy %s: read directory: %w", src, err)
	}
	if err := unix.Mkdir(dst, 0o700); err != nil {
		unix.Close(sfd)
		return copyReport{}, fmt.Errorf("copy %s: create %s: %w", src, dst, err)
	}
	dfd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(sfd)
		return copyReport{}, fmt.Errorf("copy %s: open %s: %w", src, dst, err)
	}
	var dst0 unix.Stat_t
	if err := unix.Fstat(dfd, &dst0); err != nil {
		unix.Close(sfd)
		unix.Close(dfd)
		return copyReport{}, fmt.Errorf("copy %s: stat %s: %w", src, dst, err)
	}
	c.dstTop, err = unix.FcntlInt(uintptr(dfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		unix.Close(sfd)
		unix.Close(dfd)
		return copyReport{}, fmt.Errorf("copy %s: dup: %w", src, err)
	}
	defer unix.Close(c.dstTop)
	c.report.Dirs = 1
	c.chain.push(&frame{
		node:  &node{},
		fds:   []int{sfd, dfd},
		ids:   []fileID{idOf(&st), idOf(&dst0)},
		names: names,
		st:    st,
	})
	defer c.chain.closeAll()

	c.ctx, c.cancel = context.WithCancel(parent)
	defer c.cancel()

	stopProgress := c.startProgress(src)

	c.jobs = make(chan fileJob, 2*c.workers)
	var wg sync.WaitGroup
	for range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work()
		}()
	}
	if err := c.walk(); err != nil {
		c.setErr(err)
	}
	close(c.jobs)
	wg.Wait()
	stopProgress()

	rep := c.report
	rep.Files = c.files.Load()
	rep.Bytes = c.bytes.Load()
	if err := c.firstErr(); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("copy %s: %w", src, err)
		}
		return rep, err
	}
	if len(c.unreadable) > 0 {
		return rep, &unreadableError{Dir: src, Paths: c.unreadable, Err: c.unreadErr}
	}
	return rep, nil
}

// startProgress scans src for the totals and calls Progress every
// progressEvery until the returned function is called, which reports Done.
func (c *copier) startProgress(src string) (stop func()) {
	if c.opts.Progress == nil {
		return func() {}
	}
	// A failed scan only leaves the totals short; the copy meets the
	// same problem and reports it.
	totalFiles, totalBytes, _ := scanTotals(c.ctx, src)
	snapshot := func(done bool) CopyProgress {
		return CopyProgress{
			Files: c.files.Load(), Bytes: c.bytes.Load(),
			TotalFiles: totalFiles, TotalBytes: totalBytes,
			Done: done,
		}
	}
	quit := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				c.opts.Progress(snapshot(false))
			}
		}
	}()
	return func() {
		close(quit)
		<-exited
		c.opts.Progress(snapshot(true))
	}
}

// openSrc opens name in dirfd for reading without following a symlink and
// checks that it is the inode st describes. It asks for O_NOATIME when the
// kernel may grant it (we own the file or are root), so that copying does
// not even change src's access times.
func (c *copier) openSrc(dirfd int, name string, flags int, st *unix.Stat_t) (int, error) {
	flags |= unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	var fd int
	var err error
	if c.euid == 0 || int(st.Uid) == c.euid {
		fd, err = unix.Openat(dirfd, name, flags|unix.O_NOATIME, 0)
		if err == unix.EPERM {
			fd, err = unix.Openat(dirfd, name, flags, 0)
		}
	} else {
		fd, err = unix.Openat(dirfd, name, flags, 0)
	}
	if err != nil {
		return -1, err
	}
	var got unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if idOf(&got) != idOf(st) || got.Mode&unix.S_IFMT != st.Mode&unix.S_IFMT {
		unix.Close(fd)
		return -1, errors.New("changed while being copied")
	}
	return fd, nil
}

func (c *copier) addUnreadable(rel string, err error) {
	if c.unreadErr == nil {
		c.unreadErr = err
	}
	c.unreadable = append(c.unreadable, rel)
}

// walk is the walker; see the comment at the top of the file.
func (c *copier) walk() error {
	for len(c.chain.frames) > 0 {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		f := c.chain.top()
		if len(f.names) == 0 {
			if op, err := c.setAttrs(f.fds[1], &f.st); err != nil {
				return c.fail(f.node.rel(""), op, err)
			}
			if err := c.chain.pop(); err != nil {
				return c.fail(f.node.rel(""), "leave directory", err)
			}
			continue
		}
		name := f.names[0]
		f.names[0] = ""
		f.names = f.names[1:]
		if c.beforeEntry != nil {
			c.beforeEntry()
		}
		if err := c.entry(f, name); err != nil {
			return err
		}
	}
	return nil
}

// entry copies the entry name of the directory f.
func (c *copier) entry(f *frame, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(f.fds[0], name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.EACCES {
			c.addUnreadable(f.node.rel(name), err)
			return nil
		}
		return c.fail(f.node.rel(name), "stat", err)
	}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFDIR && st.Nlink > 1 {
		if t, ok := c.links[idOf(&st)]; ok {
			return c.link(f, name, t)
		}
	}
	var op string
	var err error
	switch typ {
	case unix.S_IFDIR:
		return c.enterDir(f, name, &st)
	case unix.S_IFREG:
		return c.file(f, name, &st)
	case unix.S_IFLNK:
		if op, err = c.symlink(f, name, &st); err == nil {
			c.report.Symlinks++
		}
	case unix.S_IFIFO:
		if op, err = c.fifo(f, name, &st); err == nil {
			c.report.Fifos++
		}
	case unix.S_IFSOCK:
		c.skip(f.node.rel(name), "socket")
	case unix.S_IFCHR:
		c.skip(f.node.rel(name), "character device")
	case unix.S_IFBLK:
		c.skip(f.node.rel(name), "block device")
	default:
		c.skip(f.node.rel(name), fmt.Sprintf("file type %#o", typ))
	}
	if err != nil {
		return c.fail(f.node.rel(name), op, err)
	}
	if (typ == unix.S_IFLNK || typ == unix.S_IFIFO) && st.Nlink > 1 {
		c.links[idOf(&st)] = linkTarget{f.node, name}
	}
	return nil
}

func (c *copier) enterDir(f *frame, name string, st *unix.Stat_t) error {
	sfd, err := c.openSrc(f.fds[0], name, unix.O_DIRECTORY, st)
	if err == unix.EACCES {
		c.addUnreadable(f.node.rel(name), err)
		return nil
	}
	if err != nil {
		return c.fail(f.node.rel(name), "open", err)
	}
	names, err := readNames(sfd, c.dirent)
	if err != nil {
		unix.Close(sfd)
		if err == unix.EACCES {
			c.addUnreadable(f.node.rel(name), err)
			return nil
		}
		return c.fail(f.node.rel(name), "read directory", err)
	}
	if err := unix.Mkdirat(f.fds[1], name, 0o700); err != nil {
		unix.Close(sfd)
		return c.fail(f.node.rel(name), "mkdir", err)
	}
	dfd, err := unix.Openat(f.fds[1], name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(sfd)
		return c.fail(f.node.rel(name), "open copy", err)
	}
	var dst unix.Stat_t
	if err := unix.Fstat(dfd, &dst); err != nil {
		unix.Close(sfd)
		unix.Close(dfd)
		return c.fail(f.node.rel(name), "stat copy", err)
	}
	c.report.Dirs++
	c.chain.push(&frame{
		node:  &node{parent: f.node, name: name, depth: f.node.depth + 1},
		fds:   []int{sfd, dfd},
		ids:   []fileID{idOf(st), idOf(&dst)},
		names: names,
		st:    *st,
	})
	return nil
}

// file opens a regular file on both sides and hands it to the workers.
func (c *copier) file(f *frame, name string, st *unix.Stat_t) error {
	// O_NONBLOCK: should a fifo have replaced the file since the stat,
	// opening it must not hang; openSrc then sees the type changed.
	sfd, err := c.openSrc(f.fds[0], name, unix.O_NONBLOCK, st)
	if err == unix.EACCES {
		c.addUnreadable(f.node.rel(name), err)
		return nil
	}
	if err != nil {
		return c.fail(f.node.rel(name), "open", err)
	}
	dfd, err := unix.Openat(f.fds[1], name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		unix.Close(sfd)
		return c.fail(f.node.rel(name), "create", err)
	}
	if st.Nlink > 1 {
		c.links[idOf(st)] = linkTarget{f.node, name}
	}
	j := fileJob{src: sfd, dst: dfd, st: *st, dir: f.node, name: name}
	select {
	case c.jobs <- j:
		return nil
	case <-c.ctx.Done():
		j.close()
		return c.ctx.Err()
	}
}

func (c *copier) symlink(f *frame, name string, st *unix.Stat_t) (string, error) {
	size := int(st.Size) + 1
	if size < 256 {
		size = 256
	}
	var target string
	for {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(f.fds[0], name, buf)
		if err != nil {
			return "readlink", err
		}
		if n < len(buf) {
			target = string(buf[:n])
			break
		}
		if size >= 1<<20 {
			return "readlink", unix.ENAMETOOLONG
		}
		size *= 2
	}
	if err := unix.Symlinkat(target, f.fds[1], name); err != nil {
		return "symlink", err
	}
	if o := c.opts.Chown; o != nil {
		if err := unix.Fchownat(f.fds[1], name, o.UID, o.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return "chown", err
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(f.fds[1], name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "set times", err
	}
	return "", nil
}

func (c *copier) fifo(f *frame, name string, st *unix.Stat_t) (string, error) {
	if err := unix.Mknodat(f.fds[1], name, unix.S_IFIFO|0o600, 0); err != nil {
		return "mkfifo", err
	}
	// A fifo opened O_NONBLOCK for reading opens at once; the descriptor
	// lets us set the rest without looking the name up again.
	fd, err := unix.Openat(f.fds[1], name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "open copy", err
	}
	defer unix.Close(fd)
	return c.setAttrs(fd, st)
}

// link makes name in f another name of the already copied t.
func (c *copier) link(f *frame, name string, t linkTarget) error {
	dirfd := -1
	if d := t.dir.depth; d < len(c.chain.frames) && c.chain.frames[d].node == t.dir {
		dirfd = c.chain.frames[d].fds[1]
	}
	if dirfd < 0 {
		fd, err := c.openDst(t.dir)
		if err != nil {
			return c.fail(t.dir.rel(t.name), "open for linking", err)
		}
		defer unix.Close(fd)
		dirfd = fd
	}
	if err := unix.Linkat(dirfd, t.name, f.fds[1], name, 0); err != nil {
		return c.fail(f.node.rel(name), "link to "+quoteName(shortPath(t.dir.rel(t.name))), err)
	}
	c.report.HardLinks++
	return nil
}

// openDst opens the copy of directory n by walking down from dst, one name
// at a time.
func (c *copier) openDst(n *node) (int, error) {
	var names []string
	for ; n.parent != nil; n = n.parent {
		names = append(names, n.name)
	}
	fd := c.dstTop
	for i := len(names) - 1; i >= 0; i-- {
		next, err := unix.Openat(fd, names[i], unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if fd != c.dstTop {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = next
	}
	if fd == c.dstTop {
		return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	}
	return fd, nil
}

// setAttrs gives the copy fd the owner (with Chown), mode and times of st.
// chown comes first because it clears setuid and setgid; the times come
// last because nothing after them may change them.
func (c *copier) setAttrs(fd int, st *unix.Stat_t) (string, error) {
	if o := c.opts.Chown; o != nil {
		if err := unix.Fchown(fd, o.UID, o.GID); err != nil {
			return "chown", err
		}
	}
	if err := fchmodKeep(fd, st.Mode&0o7777); err != nil {
		return "chmod", err
	}
	if err := futimens(fd, st); err != nil {
		return "set times", err
	}
	return "", nil
}

// work copies files until the walker closes c.jobs. After an error or a
// cancellation it only closes what is left.
func (c *copier) work() {
	var buf []byte
	for j := range c.jobs {
		if c.ctx.Err() == nil {
			if err := c.copyFile(&j, &buf); err != nil {
				c.setErr(err)
			}
		}
		j.close()
	}
}

func (c *copier) copyFile(j *fileJob, buf *[]byte) error {
	if op, err := c.copyData(j.src, j.dst, j.st.Size, buf); err != nil {
		if err == context.Canceled || err == context.DeadlineExceeded {
			return err
		}
		return c.fail(j.dir.rel(j.name), op, err)
	}
	if op, err := c.setAttrs(j.dst, &j.st); err != nil {
		return c.fail(j.dir.rel(j.name), op, err)
	}
	c.files.Add(1)
	return nil
}

// copyData copies size bytes from src to dst: as a reflink if the file
// system can (instant, shares blocks), else with copy_file_range (in the
// kernel, no round trip through user memory), else with read and write.
// It looks at ctx every c.chunk bytes.
func (c *copier) copyData(src, dst int, size int64, buf *[]byte) (string, error) {
	if size == 0 {
		return "", nil
	}
	if !c.noClone.Load() {
		err := unix.IoctlFileClone(dst, src)
		if err == nil {
			c.bytes.Add(size)
			return "", nil
		}
		switch err {
		case unix.EOPNOTSUPP, unix.ENOTTY, unix.EXDEV, unix.ENOSYS:
			c.noClone.Store(true)
		}
		// Whatever FICLONE disliked, a plain copy may still work.
	}
	var done int64
	for done < size && !c.noCopyRange.Load() {
		if err := c.ctx.Err(); err != nil {
			return "", err
		}
		n, err := unix.CopyFileRange(src, nil, dst, nil, int(min(int64(c.chunk), size-done)), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if done == 0 {
				switch err {
				case unix.EXDEV, unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP:
					if err != unix.EINVAL {
						c.noCopyRange.Store(true)
					}
					return c.readWrite(src, dst, buf)
				}
			}
			return "write", err
		}
		if n == 0 {
			// Some file systems copy nothing (or the file shrank):
			// let read and write finish from where we are.
			return c.readWrite(src, dst, buf)
		}
		done += int64(n)
		c.bytes.Add(int64(n))
		if c.afterChunk != nil {
			c.afterChunk()
		}
	}
	if done < size {
		return c.readWrite(src, dst, buf)
	}
	return "", nil
}

// readWrite copies from the current offsets to the end of src.
func (c *copier) readWrite(src, dst int, buf *[]byte) (string, error) {
	if *buf == nil {
		*buf = make([]byte, rwBufSize)
	}
	b := *buf
	var sinceCheck int
	for {
		n, err := unix.Read(src, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "read", err
		}
		if n == 0 {
			return "", nil
		}
		for w := 0; w < n; {
			m, err := unix.Write(dst, b[w:n])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return "write", err
			}
			w += m
		}
		c.bytes.Add(int64(n))
		if sinceCheck += n; sinceCheck >= c.chunk {
			sinceCheck = 0
			if c.afterChunk != nil {
				c.afterChunk()
			}
			if err := c.ctx.Err(); err != nil {
				return "", err
			}
		}
	}
}

// scanTotals counts the regular files (each inode once) and their bytes
// under src, skipping whatever it cannot read.
func scanTotals(ctx context.Context, src string) (files, bytes int64, err error) {
	c := &copier{euid: os.Geteuid()}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return 0, 0, err
	}
	fd, err := c.openSrc(unix.AT_FDCWD, src, unix.O_DIRECTORY, &st)
	if err != nil {
		return 0, 0, err
	}
	buf := make([]byte, direntBufSize)
	names, err := readNames(fd, buf)
	if err != nil {
		unix.Close(fd)
		return 0, 0, err
	}
	var chain dirChain
	defer chain.closeAll()
	chain.push(&frame{node: &node{}, fds: []int{fd}, ids: []fileID{idOf(&st)}, names: names})
	seen := make(map[fileID]bool)
	for len(chain.frames) > 0 {
		if err := ctx.Err(); err != nil {
			return files, bytes, err
		}
		f := chain.top()
		if len(f.names) == 0 {
			if err := chain.pop(); err != nil {
				return files, bytes, err
			}
			continue
		}
		name := f.names[0]
		f.names = f.names[1:]
		if err := unix.Fstatat(f.fds[0], name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if st.Nlink > 1 {
				if seen[idOf(&st)] {
					continue
				}
				seen[idOf(&st)] = true
			}
			files++
			bytes += st.Size
		case unix.S_IFDIR:
			cfd, err := c.openSrc(f.fds[0], name, unix.O_DIRECTORY, &st)
			if err != nil {
				continue
			}
			names, err := readNames(cfd, buf)
			if err != nil {
				unix.Close(cfd)
				continue
			}
			chain.push(&frame{
				node:  &node{parent: f.node, name: name, depth: f.node.depth + 1},
				fds:   []int{cfd},
				ids:   []fileID{idOf(&st)},
				names: names,
			})
		}
	}
	return files, bytes, nil
}

// removeTree removes path and everything under it, like os.RemoveAll but
// for trees copyTree made: it never follows a symlink, handles trees far
// deeper than PATH_MAX, and gives directories that lack read, write or
// search permission for their owner (a copy of a 0500 or 0000 directory)
// u+rwx before emptying them — the tree is ours. It does not descend into
// a mount point: it stops with an error rather than empty another file
// system. A path that does not exist is not an error.
func removeTree(path string) error {
	path = filepath.Clean(path)
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return fmt.Errorf("remove %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlink(path); err != nil && err != unix.ENOENT {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		return nil
	}
	dir, base := filepath.Split(path)
	if base == "" || base == "." || base == ".." {
		return fmt.Errorf("remove %s: %w", path, unix.EINVAL)
	}
	if dir == "" {
		dir = "."
	}
	pfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	defer unix.Close(pfd)
	r := remover{path: path, buf: make([]byte, direntBufSize)}
	defer r.chain.closeAll()
	return r.run(pfd, base)
}

type remover struct {
	path  string
	buf   []byte
	chain dirChain
	mnt   uint64 // mount of path, see mountOf
}

func (r *remover) fail(rel string, err error) error {
	p := r.path
	if rel != "." {
		p += "/" + rel
	}
	return fmt.Errorf("remove %s: %w", quoteName(shortPath(p)), err)
}

func (r *remover) run(pfd int, base string) error {
	top := &node{}
	fd, st, err := openForRemoval(pfd, base)
	if err != nil {
		return r.fail(".", err)
	}
	r.mnt = mountOf(fd, &st)
	names, err := readNames(fd, r.buf)
	if err != nil {
		unix.Close(fd)
		return r.fail(".", err)
	}
	r.chain.push(&frame{node: top, fds: []int{fd}, ids: []fileID{idOf(&st)}, names: names})
	for len(r.chain.frames) > 0 {
		f := r.chain.top()
		if len(f.names) == 0 {
			if err := r.chain.pop(); err != nil {
				return r.fail(f.node.rel(""), err)
			}
			parent, name := pfd, base
			if len(r.chain.frames) > 0 {
				parent, name = r.chain.top().fds[0], f.node.name
			}
			if err := unix.Unlinkat(parent, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
				return r.fail(f.node.rel(""), err)
			}
			continue
		}
		name := f.names[0]
		f.names = f.names[1:]
		err := unix.Unlinkat(f.fds[0], name, 0)
		if err == nil || err == unix.ENOENT {
			continue
		}
		if err != unix.EISDIR {
			return r.fail(f.node.rel(name), err)
		}
		// An empty directory goes at once; any other (ENOTEMPTY, a
		// mount point's EBUSY, no permission) is opened and looked at.
		if err := unix.Unlinkat(f.fds[0], name, unix.AT_REMOVEDIR); err == nil || err == unix.ENOENT {
			continue
		}
		cfd, st, err := openForRemoval(f.fds[0], name)
		if err != nil {
			return r.fail(f.node.rel(name), err)
		}
		if mountOf(cfd, &st) != r.mnt {
			unix.Close(cfd)
			return r.fail(f.node.rel(name), errors.New("is a mount point, not removing what is below it"))
		}
		names, err := readNames(cfd, r.buf)
		if err != nil {
			unix.Close(cfd)
			return r.fail(f.node.rel(name), err)
		}
		r.chain.push(&frame{
			node:  &node{parent: f.node, name: name, depth: f.node.depth + 1},
			fds:   []int{cfd},
			ids:   []fileID{idOf(&st)},
			names: names,
		})
	}
	return nil
}

// openForRemoval opens the directory name in dirfd, first making it
// readable and searchable if it is not, and makes sure we may remove what
// is in it: its owner gets rwx.
func openForRemoval(dirfd int, name string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if err == unix.EACCES {
		if err := chmodNoFollow(dirfd, name, 0o700); err != nil {
			return -1, st, fmt.Errorf("chmod: %w", err)
		}
		fd, err = unix.Openat(dirfd, name, flags, 0)
	}
	if err != nil {
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	if st.Mode&0o700 != 0o700 {
		if err := unix.Fchmod(fd, st.Mode&0o7777|0o700); err != nil {
			unix.Close(fd)
			return -1, st, fmt.Errorf("chmod: %w", err)
		}
	}
	return fd, st, nil
}

// chmodNoFollow changes the mode of the directory name in dirfd without
// following a symlink. fchmodat2 (Linux 6.6) does it in one call; before
// that, an O_PATH descriptor pins the inode and chmod goes through its
// /proc/self/fd link, as glibc's fchmodat(AT_SYMLINK_NOFOLLOW) does.
func chmodNoFollow(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP && err != unix.ENOSYS {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// mountOf identifies the mount fd is on: the mount ID where statx has it
// (Linux 5.8), which tells bind mounts of the same file system apart, else
// the device.
func mountOf(fd int, st *unix.Stat_t) uint64 {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err == nil && stx.Mask&unix.STATX_MNT_ID != 0 {
		return stx.Mnt_id
	}
	return uint64(st.Dev)
}
