package sandbox

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/interrupt"
	"github.com/nix-build-shell/nbs/sandbox/term"
	"golang.org/x/sys/unix"
)

// Attach runs the command (or an interactive shell) inside the running
// build c.Build: in its user, mount, PID, network, UTS, IPC and cgroup
// namespaces, at its root and in its current directory, as its user,
// with its environment as it started, no_new_privs, nbs's seccomp filter
// and no capabilities, on a pty of the build's own devpts when nbs runs
// on a terminal. The build itself is never signalled, stopped or
// changed. It returns the command's exit status (128+N when signal N
// killed it); when the build ended meanwhile, the error wraps
// ErrBuildEnded (and the status is still the command's).
//
// The process tree, for nbs attach PID-of-builder:
//
//	nbs attach (host)                      the build (Nix)
//	 │ locked thread: setns(pidfd, NEWPID)   builder, PID 1
//	 └─ hand-forked child (rawfork_linux.go)  ├─ its children
//	      setns(pidfd, USER|MNT|NET|UTS|IPC)  │
//	      chroot(/proc/B/root), uid 1000      │
//	      execveat(nbs) ─ sandbox child ── execve CMD (PID n of the build)
func Attach(ctx context.Context, c AttachConfig) (int, error) {
	log := c.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if !isHostRoot() {
		return 0, ErrNeedRoot
	}
	b := c.Build
	pidfd, err := unix.PidfdOpen(b.PID, 0)
	if err != nil {
		return 0, fmt.Errorf("open builder %d: %w", b.PID, err)
	}
	defer unix.Close(pidfd)
	// The pidfd pins the process from here on; make sure it is still
	// the builder that was found, not a new process with its pid.
	if st, err := readStat("/proc", b.PID); err != nil || !b.Started.IsZero() && !sameStart(st, b) {
		return 0, fmt.Errorf("builder %d has ended", b.PID)
	}

	j, cleanup, err := prepareJoin(b, pidfd)
	defer cleanup()
	if err != nil {
		return 0, err
	}
	defer func() {
		for _, fd := range j.own {
			unix.Close(fd)
		}
	}()
	if err := addToolMounts(ctx, j, b, c.With, log); err != nil {
		return 0, err
	}
	facts := readHostFacts(ctx, log)
	tty := term.IsTerminal(c.Stdin) && term.IsTerminal(c.Stdout)
	sp := &spec{
		Root:       "/",
		Attach:     true,
		Argv:       c.Command,
		Env:        b.Env,
		Cwd:        ".",
		TTY:        tty,
		Seccomp:    facts.seccomp,
		NoNewPrivs: true,
	}
	if len(sp.Argv) == 0 {
		sp.Argv, sp.Env = attachShell(b)
	}
	sp.Tools = j.tools
	if len(j.tools) > 0 {
		sp.Env = withToolsPATH(sp.Env, j.tools)
	}
	log.Debug("attach", "pid", b.PID, "namespaces", nsNames(j.nsFlags), "uid", j.uid, "gid", j.gid, "argv", strings.Join(sp.Argv, " "))

	// A signal ends the attached command only (never the build): the
	// catcher ends ctx, which kills what nbs started.
	ctx, catcher := interrupt.Catch(ctx)
	defer catcher.Stop()

	p, err := startJoined(j, pidfd, b.PID, sp, c)
	if err != nil {
		return 0, err
	}
	stopRelay := func() {}
	if p.master != nil {
		_, stop, err := term.Relay(p.master, c.Stdin, c.Stdout)
		if err != nil {
			p.kill()
			<-p.waitc
			p.release()
			return 0, fmt.Errorf("set up terminal: %w", err)
		}
		stopRelay = stop
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
			p.kill()
		case <-p.exited:
		}
	}()
	ws := <-p.waitc
	close(p.exited)
	<-watched // no kill after the pidfd is closed
	stopRelay()
	p.release()
	status := interrupt.WaitStatus(ws)
	if err := catcher.Err(); err != nil {
		return status, err
	}
	// When the builder (PID 1 of the build) ends, the kernel kills
	// every other process of its PID namespace, ours too; the builder
	// itself is gone a moment later.
	wait := time.Duration(0)
	if ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		wait = 5 * time.Second
	}
	if ended(pidfd, wait) {
		return status, fmt.Errorf("%w while attached (builder PID %d exited)", ErrBuildEnded, b.PID)
	}
	return status, nil
}

// CanAttach reports whether this process may enter other users'
// namespaces: only the host's root may.
func CanAttach() bool { return isHostRoot() }

func sameStart(st procStat, b Build) bool {
	t := bootTime("/proc").Add(time.Duration(st.startTicks) * time.Second / clockTicks)
	return t.Equal(b.Started)
}

// ended reports whether the process of pidfd has exited, waiting up to
// wait for it.
func ended(pidfd int, wait time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	deadline := time.Now().Add(wait)
	for {
		n, err := unix.Poll(fds, int(max(time.Until(deadline), 0).Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		return n > 0
	}
}

// attachShell is the interactive shell: the build's $SHELL (Nix passes
// the derivation's), else sh from its PATH; its prompt says where it is.
func attachShell(b Build) ([]string, []string) {
	shell := lookupEnv(b.Env, "SHELL")
	if shell == "" {
		shell = "sh"
	}
	name := b.Name
	if name == "" {
		name = strconv.Itoa(b.PID)
	}
	env := append([]string{}, b.Env...)
	env = append(env, `PS1=[nbs attach `+name+`] \w \$ `)
	return []string{shell, "-i"}, env
}

// namespaces the hand-forked child joins, in /proc/PID/ns names; the
// PID one is the forking thread's, the mount one the sandbox child's.
var joinable = []struct {
	name string
	flag uintptr
}{
	{"user", unix.CLONE_NEWUSER},
	{"net", unix.CLONE_NEWNET},
	{"uts", unix.CLONE_NEWUTS},
	{"ipc", unix.CLONE_NEWIPC},
	{"cgroup", unix.CLONE_NEWCGROUP},
}

func nsNames(flags uintptr) string {
	var s []string
	for _, n := range joinable {
		if flags&n.flag != 0 {
			s = append(s, n.name)
		}
	}
	return strings.Join(s, ",")
}

// otherNS reports whether pid's namespace name differs from ours: a
// build without Nix's sandbox shares the host's, and setns into one's
// own user namespace fails.
func otherNS(pid int, name string) (bool, error) {
	var theirs, ours unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, name), &theirs); err != nil {
		return false, fmt.Errorf("namespace %s of builder %d: %w", name, pid, err)
	}
	if err := unix.Stat("/proc/self/ns/"+name, &ours); err != nil {
		return false, fmt.Errorf("own namespace %s: %w", name, err)
	}
	return theirs.Ino != ours.Ino || theirs.Dev != ours.Dev, nil
}

// prepareJoin opens what the hand-forked child needs, above rawFDBase.
// The returned function closes it all.
func prepareJoin(b Build, pidfd int) (*rawJoin, func(), error) {
	var fds []int
	cleanup := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	high := func(fd int, err error) (uintptr, error) {
		if err != nil {
			return 0, err
		}
		h, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, rawFDBase)
		unix.Close(fd)
		if err != nil {
			return 0, fmt.Errorf("fcntl F_DUPFD_CLOEXEC: %w", err)
		}
		fds = append(fds, h)
		return uintptr(h), nil
	}
	j := &rawJoin{}
	var err error
	for _, n := range joinable {
		other, err := otherNS(b.PID, n.name)
		if err != nil {
			return nil, cleanup, err
		}
		if other {
			j.nsFlags |= n.flag
		}
	}
	proc := fmt.Sprintf("/proc/%d/", b.PID)
	if j.pidfd, err = high(unix.Dup(pidfd)); err != nil {
		return nil, cleanup, err
	}
	// What the sandbox child gets on mntFD, rootFD and cwdFD.
	for _, o := range []struct{ name, what string }{{"ns/mnt", "mount namespace"}, {"root", "root"}, {"cwd", "directory"}} {
		fd, err := high(unix.Open(proc+o.name, unix.O_RDONLY|unix.O_CLOEXEC, 0))
		if err != nil {
			return nil, cleanup, fmt.Errorf("open the builder's %s: %w", o.what, err)
		}
		j.mounts = append(j.mounts, fd)
	}
	if j.exeFD, err = high(unix.Open("/proc/self/exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)); err != nil {
		return nil, cleanup, fmt.Errorf("open nbs itself: %w", err)
	}
	ids, err := readIDs(proc)
	if err != nil {
		return nil, cleanup, err
	}
	j.uid, j.gid, j.groups = uintptr(ids.uid), uintptr(ids.gid), ids.groups
	j.empty = &nul[0]
	return j, cleanup, nil
}

// addToolMounts clones, in the host's mount namespace, a read-only
// detached mount of each --with tool and of its closure, except what
// the build has already, for the sandbox child's addTools.
func addToolMounts(ctx context.Context, j *rawJoin, b Build, with []string, log *slog.Logger) error {
	if len(with) == 0 {
		return nil
	}
	tools, err := toolPaths(with)
	if err != nil {
		return err
	}
	closure, from, err := nix.Requisites(ctx, tools)
	if err != nil {
		return fmt.Errorf("the closure of the --with tools: %w", err)
	}
	log.Debug("closure of the --with tools", "from", from)
	// The tools first, so that their bin/ lead PATH in that order.
	seen := map[string]bool{}
	var add []string
	for _, p := range append(tools, closure...) {
		if seen[p] {
			continue
		}
		seen[p] = true
		if _, err := os.Lstat(filepath.Join("/proc", strconv.Itoa(b.PID), "root", p)); err == nil {
			continue // the build has it
		}
		add = append(add, p)
	}
	for _, p := range add {
		fd, err := unix.OpenTree(unix.AT_FDCWD, p, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return fmt.Errorf("open_tree %s: %w", p, err)
		}
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("mount_setattr %s read-only: %w", p, err)
		}
		h, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, rawFDBase)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("fcntl F_DUPFD_CLOEXEC: %w", err)
		}
		j.own = append(j.own, h)
		j.toolFDs = append(j.toolFDs, uintptr(h))
		j.tools = append(j.tools, p)
	}
	log.Debug("tools added to the attached command's view", "paths", strings.Join(add, " "))
	return nil
}

// withToolsPATH puts the tools' bin/ directories first in env's PATH.
func withToolsPATH(env, tools []string) []string {
	var bins []string
	for _, p := range tools {
		if fi, err := os.Stat(p + "/bin"); err == nil && fi.IsDir() {
			bins = append(bins, p+"/bin")
		}
	}
	if len(bins) == 0 {
		return env
	}
	out := make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			kv = "PATH=" + strings.Join(bins, ":")
			if v != "" {
				kv += ":" + v
			}
			found = true
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, "PATH="+strings.Join(bins, ":"))
	}
	return out
}

// builderIDs are the builder's uid and gid inside its user namespace and
// its supplementary groups as host ids.
type builderIDs struct {
	uid, gid int
	groups   []uint32
}

func readIDs(proc string) (builderIDs, error) {
	f, err := os.Open(proc + "status")
	if err != nil {
		return builderIDs{}, err
	}
	defer f.Close()
	var ids builderIDs
	hostUID, hostGID := -1, -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fs := strings.Fields(v)
		switch k {
		case "Uid":
			if len(fs) > 0 {
				hostUID, _ = strconv.Atoi(fs[0])
			}
		case "Gid":
			if len(fs) > 0 {
				hostGID, _ = strconv.Atoi(fs[0])
			}
		case "Groups":
			for _, g := range fs {
				n, err := strconv.ParseUint(g, 10, 32)
				if err != nil {
					return builderIDs{}, fmt.Errorf("%sstatus: bad group %q", proc, g)
				}
				ids.groups = append(ids.groups, uint32(n))
			}
		}
	}
	if hostUID < 0 || hostGID < 0 {
		return builderIDs{}, fmt.Errorf("%sstatus: no Uid or Gid", proc)
	}
	if ids.uid, err = insideID(proc+"uid_map", hostUID); err != nil {
		return builderIDs{}, err
	}
	if ids.gid, err = insideID(proc+"gid_map", hostGID); err != nil {
		return builderIDs{}, err
	}
	return ids, nil
}

// insideID maps a host id to the id it has in the user namespace whose
// map is file ("inside outside count" lines).
func insideID(file string, host int) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	in, ok := mapID(b, host)
	if !ok {
		return 0, fmt.Errorf("%s: id %d is not mapped", file, host)
	}
	return in, nil
}

// mapID maps host through an id map ("inside outside count" lines).
func mapID(b []byte, host int) (int, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		// Each field is a u32 (user_namespaces(7)): parsed as such, the
		// sum cannot overflow.
		in, err1 := strconv.ParseUint(f[0], 10, 32)
		out, err2 := strconv.ParseUint(f[1], 10, 32)
		n, err3 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil || host < 0 {
			continue
		}
		if h := uint64(host); h >= out && h-out < n {
			if id := in + (h - out); id <= math.MaxUint32 {
				return int(id), true
			}
		}
	}
	return 0, false
}

// joined is a started attach.
type joined struct {
	// forked: kill ends what nbs started in the build, never the
	// build.
	forked
	waitc  chan syscall.WaitStatus
	exited chan struct{}
}

// startJoined forks the joining child and runs the sandbox child's
// protocol with it: the spec on fd 3, failures on fd 4, the pty master
// on fd 5.
func startJoined(j *rawJoin, pidfd, builder int, sp *spec, c AttachConfig) (*joined, error) {
	cp, err := newChildPipes(sp.TTY, c.Stdin, c.Stdout)
	if err != nil {
		return nil, err
	}
	defer cp.close()
	specR, specW, errR, errW, ptyParent, ptyChild := cp.specR, cp.specW, cp.errR, cp.errW, cp.ptyParent, cp.ptyChild
	stdin, stdout := cp.stdin, cp.stdout
	files := []*os.File{stdin, stdout, c.Stderr, specR, errW, ptyChild}
	if ptyChild == nil {
		files[ptyFD] = specR // a place holder, closed by the child
	}
	var placed []int
	defer func() {
		for _, fd := range placed {
			unix.Close(fd)
		}
	}()
	for _, f := range files {
		h, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, rawFDBase)
		if err != nil {
			return nil, fmt.Errorf("fcntl F_DUPFD_CLOEXEC: %w", err)
		}
		placed = append(placed, h)
		j.place = append(j.place, uintptr(h))
	}
	j.place = append(j.place, j.mounts...)
	j.place = append(j.place, j.toolFDs...)
	errFDHigh, err := unix.FcntlInt(errW.Fd(), unix.F_DUPFD_CLOEXEC, rawFDBase)
	if err != nil {
		return nil, fmt.Errorf("fcntl F_DUPFD_CLOEXEC: %w", err)
	}
	placed = append(placed, errFDHigh)
	j.errFD = uintptr(errFDHigh)
	if j.argv, err = cStrings([]string{childArg0}); err != nil {
		return nil, err
	}
	if j.envv, err = cStrings(nil); err != nil {
		return nil, err
	}
	j.nofile = nofileToRestore()

	otherPID, err := otherNS(builder, "pid")
	if err != nil {
		return nil, err
	}
	p := &joined{forked: forked{pidfd: -1}, waitc: make(chan syscall.WaitStatus, 1), exited: make(chan struct{})}
	// The forking thread's PID namespace for children becomes the
	// build's (the thread is thrown away with its goroutine).
	var joinPID func() error
	if otherPID {
		joinPID = func() error {
			if err := unix.Setns(pidfd, unix.CLONE_NEWPID); err != nil {
				return fmt.Errorf("join the build's PID namespace: %w", err)
			}
			return nil
		}
	}
	if err := p.fork(joinPID, func(pidfd *int32) (uintptr, syscall.Errno) { return rawFork(j, pidfd) }, p.waitc); err != nil {
		if errno, ok := err.(syscall.Errno); ok {
			return nil, fmt.Errorf("fork: %w", errno)
		}
		return nil, err
	}
	for _, fd := range placed {
		unix.Close(fd)
	}
	placed = nil
	specR.Close()
	errW.Close()
	if ptyChild != nil {
		ptyChild.Close()
	}
	fail := func(err error) (*joined, error) {
		p.kill()
		<-p.waitc
		p.release()
		return nil, err
	}
	// A child that failed before reading the spec closes the pipe: its
	// report on the error pipe says why.
	encErr := json.NewEncoder(specW).Encode(sp)
	specW.Close()
	msg, err := io.ReadAll(errR)
	if err != nil {
		return fail(fmt.Errorf("read sandbox status: %w", err))
	}
	if len(msg) > 0 {
		return fail(joinFailure(msg))
	}
	if encErr != nil {
		return fail(fmt.Errorf("send spec to sandbox: %w", encErr))
	}
	if ptyParent != nil {
		m, err := recvFD(ptyParent)
		if err != nil {
			return fail(fmt.Errorf("receive pty from sandbox: %w", err))
		}
		p.master = m
	}
	return p, nil
}

// joinFailure decodes a failure of the hand-forked child or of the
// sandbox child after it.
func joinFailure(msg []byte) error {
	if len(msg) == 8 && msg[0] == rawFailureMagic {
		errno := syscall.Errno(binary.LittleEndian.Uint32(msg[4:]))
		name := rawStepNames[msg[1]]
		if name == "" {
			name = "step " + strconv.Itoa(int(msg[1]))
		}
		return &setupError{Step: name, Msg: errno.Error()}
	}
	return childFailure(msg)
}

// cStrings is argv or envp for execve: NUL-terminated strings and a nil
// at the end.
func cStrings(ss []string) ([]*byte, error) {
	out := make([]*byte, 0, len(ss)+1)
	for _, s := range ss {
		p, err := unix.BytePtrFromString(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return append(out, nil), nil
}
