package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/nix-build-shell/nbs/sandbox/diff"
	"github.com/nix-build-shell/nbs/sandbox/interrupt"
	"github.com/nix-build-shell/nbs/sandbox/term"
	"golang.org/x/sys/unix"
)

// process is a started sandbox.
type process struct {
	forked
	waitc chan syscall.WaitStatus
	// noPIDNS: the command has no PID namespace whose end would end
	// what it started; nbs, its subreaper, does (see endOrphans).
	noPIDNS bool
	// before are nbs's children from before the start (see endOrphans).
	before map[int]bool
}

// setupError is a set-up step that failed inside the child.
type setupError struct {
	Step string
	Msg  string
	// Errno is the failed system call's, when the step was one.
	Errno syscall.Errno
}

func (e *setupError) Error() string { return "sandbox set-up step " + e.Step + " failed: " + e.Msg }

func (e *setupError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// start starts the sandbox of sp as ids and waits until it has exec'd
// the command (or failed a set-up step): it compiles the set-up
// (compileSandbox), forks the child that runs it, writes the child's id
// maps, serves a FUSE view once the child has mounted it, and takes the
// pty master. Without a TTY the child gets stdin, stdout and stderr as
// they are; with one, /dev/null until the pty replaces them, so that it
// has nothing of the user's terminal.
func start(sp *spec, ids Owner, view *viewFiles, stdin, stdout, stderr *os.File) (*process, error) {
	var closers []*os.File
	defer func() {
		for _, f := range closers {
			f.Close()
		}
	}()
	// Blocking pipes, as os.NewFile leaves them: os.Pipe's would be
	// registered with the poller and made blocking again for Fd.
	pipe := func() (r, w *os.File, err error) {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			return nil, nil, fmt.Errorf("pipe: %w", err)
		}
		r, w = os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w")
		closers = append(closers, r, w)
		return r, w, nil
	}
	socketPair := func(name string) (parent, child *os.File, err error) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("socketpair: %w", err)
		}
		parent, child = os.NewFile(uintptr(fds[0]), name), os.NewFile(uintptr(fds[1]), name+"-child")
		closers = append(closers, parent, child)
		return parent, child, nil
	}
	errR, errW, err := pipe()
	if err != nil {
		return nil, err
	}
	syncR, syncW, err := pipe()
	if err != nil {
		return nil, err
	}
	// As os/exec: what the caller left out is /dev/null.
	for _, f := range []**os.File{&stdin, &stdout, &stderr} {
		if *f == nil {
			devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return nil, err
			}
			closers = append(closers, devnull)
			*f = devnull
		}
	}
	var ptyParent, ptyChild, readyParent, readyChild *os.File
	if sp.TTY {
		if ptyParent, ptyChild, err = socketPair("pty"); err != nil {
			return nil, err
		}
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		closers = append(closers, devnull)
		stdin, stdout = devnull, devnull
	}
	v := sp.View
	if v != nil && v.FUSE {
		if readyParent, readyChild, err = socketPair("view"); err != nil {
			return nil, err
		}
	}
	if v != nil && v.LowerFD && (view == nil || view.fd == nil) {
		return nil, errors.New("the view's idmapped kept directory is missing")
	}

	// The child's copies of the descriptors it uses, at or above
	// progFDBase (see childFDs).
	var high []int
	defer func() {
		for _, fd := range high {
			unix.Close(fd)
		}
	}()
	place := func(f *os.File) (int, error) {
		if f == nil {
			return -1, nil
		}
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, progFDBase)
		if err != nil {
			return -1, fmt.Errorf("fcntl F_DUPFD_CLOEXEC: %w", err)
		}
		high = append(high, fd)
		return fd, nil
	}
	var fds childFDs
	var errFDHigh int
	lower := (*os.File)(nil)
	if v != nil && v.LowerFD {
		lower = view.fd
	}
	for _, x := range []struct {
		f  *os.File
		fd *int
	}{
		{stdin, &fds.stdin}, {stdout, &fds.stdout}, {stderr, &fds.stderr}, {syncR, &fds.sync},
		{ptyChild, &fds.pty}, {lower, &fds.lower}, {readyChild, &fds.fuseReady}, {errW, &errFDHigh},
	} {
		if *x.fd, err = place(x.f); err != nil {
			return nil, err
		}
	}

	fds.syncW = int(syncW.Fd())
	cids, userNS, flags := childIDsOf(sp, ids)
	p, err := compileSandbox(sp, cids, userNS, fds)
	if err != nil {
		return nil, err
	}
	proc := &process{forked: forked{pidfd: -1}, waitc: make(chan syscall.WaitStatus, 1), noPIDNS: sp.NoNamespaces}
	if proc.noPIDNS {
		if err := becomeSubreaper(); err != nil {
			return nil, err
		}
		proc.before = children(os.Getpid())
	}
	if err := proc.fork(nil, func(pidfd *int32) (uintptr, syscall.Errno) {
		return forkProg(flags, p.ops, uintptr(errFDHigh), pidfd)
	}, proc.waitc); err != nil {
		if sp.NoNamespaces {
			return nil, fmt.Errorf("start the build's shell: %w", err)
		}
		return nil, refusedStart(sp, ids, startError(err))
	}
	// The program stays alive (and unmoved) until the child has exec'd
	// or failed: its memory is the child's.
	defer runtime.KeepAlive(p)
	for _, fd := range high {
		unix.Close(fd)
	}
	high = nil
	for _, f := range []*os.File{errW, syncR, ptyChild, readyChild} {
		if f != nil {
			f.Close()
		}
	}
	fail := func(err error) (*process, error) {
		proc.kill()
		<-proc.waitc
		proc.release()
		return nil, err
	}
	// failed is fail for what went wrong on nbs's side of the start:
	// the child's own record of a failed step comes first, as it may
	// be why (a child that died early closed the pipes it was given).
	failed := func(err error) (*process, error) {
		fail(nil)
		if msg, _ := io.ReadAll(errR); len(msg) > 0 {
			if se := progFailure(p, msg); se != nil {
				err = se
			}
		}
		return nil, refusedStart(sp, ids, err)
	}
	if userNS {
		if err := writeIDMaps(proc.pid, cids, ids); err != nil {
			return failed(startError(err))
		}
	}
	if _, err := syncW.Write([]byte{0}); err != nil {
		return failed(fmt.Errorf("start sandbox: %w", err))
	}
	if readyParent != nil {
		// The child has mounted the FUSE view and sends its device (or
		// failed: no message, and the error pipe says why).
		if dev, err := recvFD(readyParent); err == nil {
			err = view.serve(dev)
			dev.Close()
			if err != nil {
				return fail(err)
			}
		}
	}
	// EOF on the close-on-exec error pipe: execve succeeded.
	msg, err := io.ReadAll(errR)
	if err != nil {
		return fail(fmt.Errorf("read sandbox status: %w", err))
	}
	if len(msg) > 0 {
		se := progFailure(p, msg)
		if se == nil {
			se = &setupError{Step: "unknown", Msg: string(msg)}
		}
		return fail(refusedStart(sp, ids, se))
	}
	if ptyParent != nil {
		m, err := recvFD(ptyParent)
		if err != nil {
			return fail(fmt.Errorf("receive pty from sandbox: %w", err))
		}
		proc.master = m
	}
	return proc, nil
}

// childIDsOf are the ids the child of sp takes (mapped to 1000/100
// inside, as in Nix; an unsandboxed build ran with host ids, so they
// stay what they are; without namespaces, only host root can, and must,
// change to ids), whether it gets a user namespace, and its clone flags.
func childIDsOf(sp *spec, ids Owner) (childIDs, bool, uintptr) {
	if sp.NoNamespaces {
		c := childIDs{uid: os.Getuid(), gid: os.Getgid()}
		if isHostRoot() {
			c = childIDs{uid: ids.UID, gid: ids.GID, setGroups: true}
		}
		return c, false, 0
	}
	c := childIDs{uid: sandboxUID, gid: sandboxGID}
	if sp.Unsandboxed {
		c = childIDs{uid: ids.UID, gid: ids.GID}
	}
	return c, true, cloneFlags(sp)
}

// writeIDMaps maps the child's ids inside to ids outside, as os/exec
// does: setgroups "deny" (Nix writes it too), then uid_map and gid_map.
func writeIDMaps(pid int, inside childIDs, ids Owner) error {
	proc := fmt.Sprintf("/proc/%d/", pid)
	for _, m := range [][2]string{
		{"setgroups", "deny"},
		{"uid_map", fmt.Sprintf("%d %d 1\n", inside.uid, ids.UID)},
		{"gid_map", fmt.Sprintf("%d %d 1\n", inside.gid, ids.GID)},
	} {
		if err := os.WriteFile(proc+m[0], []byte(m[1]), 0); err != nil {
			return err
		}
	}
	return nil
}

// namespaceSteps are the child's first steps, the ones a refusal of the
// new namespaces fails (an AppArmor policy that allows the clone but
// takes the capabilities inside, say).
var namespaceSteps = map[string]bool{"start": true, "bring up loopback": true, "set host name": true, "make mounts private": true}

// refusedStart is err, the failed start of a sandbox of Nix's (chooseMode
// did not probe for it), or, when err may be a refusal of its
// namespaces, the probe's word on it: the restriction and its fix, or
// why nbs cannot start at all.
func refusedStart(sp *spec, ids Owner, err error) error {
	if sp.Unsandboxed || sp.NoNamespaces {
		return err
	}
	var se *setupError
	if !errors.Is(err, errUserNS) && !(errors.As(err, &se) && namespaceSteps[se.Step]) {
		return err
	}
	if perr := probeSandbox(sp.HostNetwork, ids); perr != nil {
		return perr
	}
	return err
}

// probeSandbox runs the probe in the namespaces of a sandbox of Nix's
// (with the host's network for a fixed-output build) as ids: nil when
// they can be made, else the restriction and its fix, or why nbs cannot
// start at all.
func probeSandbox(hostNetwork bool, ids Owner) error {
	probed := &spec{HostNetwork: hostNetwork}
	plain := &spec{Unsandboxed: true, NoNamespaces: true}
	r, err := namespacesRefused(procAttr(probed, ids), procAttr(plain, ids))
	switch {
	case err != nil:
		return err
	case r == nil:
		return nil
	}
	return r.error()
}

// childPipes are the parent's ends and the child's of the sandbox
// child's protocol: the spec (specFD), its failure report (errFD) and,
// for a TTY, the socket the pty master comes back on (ptyFD).
type childPipes struct {
	specR, specW, errR, errW *os.File
	ptyParent, ptyChild      *os.File // nil without a TTY
	// stdin and stdout are what the child starts with: with a TTY
	// /dev/null, since the child replaces its stdio with the pty slave
	// and until then has nothing of the user's terminal.
	stdin, stdout *os.File
	all           []*os.File
}

func newChildPipes(tty bool, stdin, stdout *os.File) (*childPipes, error) {
	cp := &childPipes{stdin: stdin, stdout: stdout}
	var err error
	if cp.specR, cp.specW, err = os.Pipe(); err != nil {
		return nil, err
	}
	cp.all = append(cp.all, cp.specR, cp.specW)
	if cp.errR, cp.errW, err = os.Pipe(); err != nil {
		cp.close()
		return nil, err
	}
	cp.all = append(cp.all, cp.errR, cp.errW)
	if !tty {
		return cp, nil
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		cp.close()
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	cp.ptyParent, cp.ptyChild = os.NewFile(uintptr(fds[0]), "pty-parent"), os.NewFile(uintptr(fds[1]), "pty-child")
	cp.all = append(cp.all, cp.ptyParent, cp.ptyChild)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		cp.close()
		return nil, err
	}
	cp.all = append(cp.all, devnull)
	cp.stdin, cp.stdout = devnull, devnull
	return cp, nil
}

// close closes every end (closing one twice is harmless).
func (cp *childPipes) close() {
	for _, f := range cp.all {
		f.Close()
	}
}

// childFailure decodes the child's report of a failed set-up step.
func childFailure(msg []byte) error {
	var ce childError
	if json.Unmarshal(msg, &ce) != nil {
		ce = childError{Step: "unknown", Err: string(msg)}
	}
	return &setupError{Step: ce.Step, Msg: ce.Err}
}

const (
	sandboxUID = 1000
	sandboxGID = 100
)

// procAttr is how the namespace probe (probeArg0) starts as the child of
// sp would (childIDsOf): in its namespaces with ids mapped, or, for
// sp.NoNamespaces, as ids itself (only host root can, and must, change
// to them).
func procAttr(sp *spec, ids Owner) *syscall.SysProcAttr {
	if sp.NoNamespaces {
		a := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
		if isHostRoot() {
			a.Credential = &syscall.Credential{Uid: uint32(ids.UID), Gid: uint32(ids.GID), Groups: []uint32{}}
		}
		return a
	}
	c, _, flags := childIDsOf(sp, ids)
	return &syscall.SysProcAttr{
		Cloneflags: flags,
		UidMappings: []syscall.SysProcIDMap{
			{ContainerID: c.uid, HostID: ids.UID, Size: 1},
		},
		GidMappings: []syscall.SysProcIDMap{
			{ContainerID: c.gid, HostID: ids.GID, Size: 1},
		},
		// Nix writes "deny" to setgroups too.
		GidMappingsEnableSetgroups: false,
		Credential:                 &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.gid), NoSetGroups: true},
		// The probe's mount, across its exec as uid 1000.
		AmbientCaps: []uintptr{unix.CAP_SYS_ADMIN},
		Setsid:      true,
		Pdeathsig:   syscall.SIGKILL,
	}
}

func cloneFlags(sp *spec) uintptr {
	if sp.Unsandboxed {
		// The mount namespace is for the copy's bind only; the PID
		// namespace lets nbs end every process the command started.
		return unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID
	}
	f := uintptr(unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWPID)
	if !sp.HostNetwork {
		f |= unix.CLONE_NEWNET
	}
	return f
}

func recvFD(sock *os.File) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("no descriptor in message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("no descriptor in message")
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// forked is a child nbs forked by hand (forkProg, rawFork).
type forked struct {
	pid int
	// pidfd is the child's (-1 on kernels before 5.2): a signal through
	// it cannot reach another process that took the pid after the
	// child was reaped.
	pidfd  int
	master *os.File // pty master (spec.TTY)
	// reaped: the child was waited for, and pid may be another
	// process's.
	reaped atomic.Bool
}

// fork starts the child with forkFn, called with syscall.ForkLock held,
// on a thread of its own that first runs setup (nil: nothing), and reaps
// it there: waitc gets its status. The child's parent-death signal fires
// when the thread that forked it exits, not the process: the thread
// stays for the child's whole life. It returns once the child is forked.
func (f *forked) fork(setup func() error, forkFn func(pidfd *int32) (uintptr, syscall.Errno), waitc chan<- syscall.WaitStatus) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes with the goroutine
		if setup != nil {
			if err := setup(); err != nil {
				started <- err
				return
			}
		}
		pidfd := int32(-1)
		syscall.ForkLock.Lock()
		pid, errno := forkFn(&pidfd)
		syscall.ForkLock.Unlock()
		if errno != 0 {
			started <- errno
			return
		}
		f.pid, f.pidfd = int(pid), int(pidfd)
		started <- nil
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(int(pid), &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
		f.reaped.Store(true)
		waitc <- syscall.WaitStatus(ws)
	}()
	return <-started
}

// kill sends the child SIGKILL.
func (f *forked) kill() {
	if f.pidfd >= 0 {
		_ = unix.PidfdSendSignal(f.pidfd, unix.SIGKILL, nil, 0)
		return
	}
	if !f.reaped.Load() {
		_ = unix.Kill(f.pid, unix.SIGKILL)
	}
}

// release closes the pty master and the pidfd, once the child was waited
// for and nothing kills it any more.
func (f *forked) release() {
	if f.master != nil {
		f.master.Close()
	}
	if f.pidfd >= 0 {
		unix.Close(f.pidfd)
		f.pidfd = -1
	}
}

// Close releases the pty master and the pidfd; call it after the relay
// has ended and the process was waited for.
func (p *process) Close() { p.release() }

// Master is the pty master of a TTY sandbox, nil otherwise.
func (p *process) Master() *os.File { return p.master }

// Kill ends the sandbox: killing its PID 1 makes the kernel kill every
// process in its PID namespace. Without one, Wait ends the rest.
func (p *process) Kill() { p.kill() }

// Wait waits for the sandbox's PID 1 and returns its exit status in the
// shell's convention: the exit code, or 128+N when killed by signal N.
func (p *process) Wait(ctx context.Context) (int, error) {
	var ws syscall.WaitStatus
	select {
	case ws = <-p.waitc:
	case <-ctx.Done():
		p.Kill()
		ws = <-p.waitc
	}
	if p.noPIDNS {
		endOrphans(p.before)
	}
	return interrupt.WaitStatus(ws), nil
}

// run starts the sandbox for s as ids, relays the user's terminal to its
// pty (spec.TTY) and waits for its PID 1, which ctx ending kills. It
// returns the command's status as process.Wait does.
func run(ctx context.Context, s *spec, ids Owner, view *viewFiles, stdin, stdout, stderr *os.File) (int, error) {
	p, err := start(s, ids, view, stdin, stdout, stderr)
	if err != nil {
		return 0, err
	}
	stopRelay := func() {}
	if m := p.Master(); m != nil {
		_, stop, err := term.Relay(m, stdin, stdout)
		if err != nil {
			p.Kill()
			p.Wait(context.Background())
			p.Close()
			return 0, fmt.Errorf("set up terminal: %w", err)
		}
		stopRelay = stop
	}
	status, err := p.Wait(ctx)
	stopRelay()
	p.Close()
	return status, err
}

// reportChanges compares the copy with the kept directory and tells
// changed what differs, if anything. Entries the copy could not include
// are not counted as removed. A comparison that fails (the sandbox may
// have made a directory unreadable) is only a debug message: the
// session itself went well.
func reportChanges(b *keptBuild, ws *workspace, changed func(diff.Summary), log *slog.Logger) {
	compare := diff.TreesOver
	copy := ws.dir.build()
	if ws.view != nil {
		compare, copy = diff.OverlayOver, ws.view.Upper
	}
	// What the session entered: the kept directory, with the kept
	// changes entered again on top.
	var kept diff.Stack
	for _, l := range b.above {
		kept = append(kept, l.Path)
	}
	kept = append(kept, b.dir)
	cs, err := compare(kept, copy, diff.Options{Ignore: ws.notCopied})
	if err != nil {
		log.Debug("cannot compare /build with the kept directory", "err", err)
		return
	}
	if s := diff.Summarize(cs); !s.Empty() {
		log.Debug("/build changed", "summary", s.String())
		changed(s)
	}
	if ws.view != nil {
		if p := splitLinks(cs, b.above, b.dir); len(p) > 0 {
			log.Warn(fmt.Sprintf("%s had other names (hard links) in the kept directory: the copy-on-write view records a change under one name only "+
				"(the kernel's overlay splits the link, fuse-overlayfs may name another of them), and so do --keep and nbs diff; "+
				"a copy keeps hard links linked: nbs shell --copy", joinNames(p)))
		}
	}
}

// splitLinks are the files among the changes cs that were hard links in
// what the session entered (the kept directory below kept changes
// above): the view changed one name of each (see chooseView). It
// looks at the changed entries only, so that entry never has to walk
// the kept directory for them.
func splitLinks(cs []diff.Change, above []Layer, dir string) []string {
	var split []string
	for _, c := range cs {
		if c.Kind == diff.Added || !c.Old.Mode.IsRegular() {
			continue
		}
		var st unix.Stat_t
		if unix.Lstat(layeredPath(above, dir, c.Path), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1 {
			split = append(split, "/build/"+c.Path)
		}
	}
	return split
}

// joinNames lists up to three names, then how many more there are.
func joinNames(names []string) string {
	const show = 3
	if len(names) <= show {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:show], ", "), len(names)-show)
}
