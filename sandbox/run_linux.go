package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/nix-build-shell/nbs/sandbox/diff"
	"github.com/nix-build-shell/nbs/sandbox/interrupt"
	"github.com/nix-build-shell/nbs/sandbox/term"
	"golang.org/x/sys/unix"
)

// process is a started sandbox.
type process struct {
	cmd    *exec.Cmd
	master *os.File // pty master (spec.TTY)
	waitc  chan error
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
}

func (e *setupError) Error() string { return "sandbox set-up step " + e.Step + " failed: " + e.Msg }

// start spawns the sandbox child for spec with the host ids mapped to
// 1000/100, and waits until it has exec'd the command (or failed a
// set-up step). Without spec.TTY the child gets stdin, stdout and stderr
// as they are.
func start(sp *spec, ids Owner, view *viewFiles, stdin, stdout, stderr *os.File) (*process, error) {
	cp, err := newChildPipes(sp.TTY, stdin, stdout)
	if err != nil {
		return nil, err
	}
	defer cp.close()
	specR, specW, errR, errW, ptyParent, ptyChild := cp.specR, cp.specW, cp.errR, cp.errW, cp.ptyParent, cp.ptyChild
	stdin, stdout = cp.stdin, cp.stdout
	extra := []*os.File{specR, errW}
	if ptyChild != nil {
		extra = append(extra, ptyChild)
	}
	var readyR *os.File
	if view != nil {
		// The view's file at viewFD, and its socket at viewReadyFD.
		if len(extra) == 2 {
			extra = append(extra, nil)
		}
		extra = append(extra, view.fd)
		if view.serve != nil {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("socketpair: %w", err)
			}
			readyR = os.NewFile(uintptr(fds[0]), "view-parent")
			readyW := os.NewFile(uintptr(fds[1]), "view-child")
			defer readyR.Close()
			defer readyW.Close()
			extra = append(extra, readyW)
		}
	}

	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{childArg0},
		Env:         []string{},
		Stdin:       stdin,
		Stdout:      stdout,
		Stderr:      stderr,
		ExtraFiles:  extra,
		SysProcAttr: procAttr(sp, ids),
	}

	p := &process{cmd: cmd, waitc: make(chan error, 1), noPIDNS: sp.NoNamespaces}
	if p.noPIDNS {
		if err := becomeSubreaper(); err != nil {
			return nil, err
		}
		p.before = children(os.Getpid())
	}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked exits, not the
		// process: keep this goroutine on its thread for the child's
		// whole life.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitc <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		if sp.NoNamespaces {
			return nil, fmt.Errorf("start the build's shell: %w", err)
		}
		return nil, refusedStart(sp, ids, startError(err))
	}
	specR.Close()
	errW.Close()
	if ptyChild != nil {
		ptyChild.Close()
	}
	if readyR != nil {
		extra[len(extra)-1].Close()
	}

	if err := json.NewEncoder(specW).Encode(sp); err != nil {
		// The child died before reading it: its own report says why.
		if msg, _ := io.ReadAll(errR); len(msg) > 0 {
			p.Kill()
			return nil, childFailure(msg)
		}
		p.Kill()
		return nil, fmt.Errorf("send spec to sandbox: %w", err)
	}
	specW.Close()

	if readyR != nil {
		// The child has mounted the FUSE view and sends its device (or
		// failed: no message, and the error pipe says why).
		if dev, err := recvFD(readyR); err == nil {
			err = view.serve(dev)
			dev.Close()
			if err != nil {
				p.Kill()
				return nil, err
			}
		}
	}

	// EOF on the close-on-exec error pipe: execve succeeded.
	msg, err := io.ReadAll(errR)
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("read sandbox status: %w", err)
	}
	if len(msg) > 0 {
		p.Kill()
		return nil, refusedStart(sp, ids, childFailure(msg))
	}
	if ptyParent != nil {
		m, err := recvFD(ptyParent)
		if err != nil {
			p.Kill()
			return nil, fmt.Errorf("receive pty from sandbox: %w", err)
		}
		p.master = m
	}
	return p, nil
}

// namespaceSteps are the child's first steps, the ones a refusal of the
// new namespaces fails (an AppArmor policy that allows the clone but
// takes the capabilities inside, say).
var namespaceSteps = map[string]bool{"bring up loopback": true, "set host name": true, "make mounts private": true}

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
	probed := &spec{HostNetwork: sp.HostNetwork}
	plain := &spec{Unsandboxed: true, NoNamespaces: true}
	r, perr := namespacesRefused(procAttr(probed, ids), procAttr(plain, ids))
	switch {
	case perr != nil:
		return perr
	case r == nil:
		return err
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

// procAttr is how the child of sp is started as ids: in its namespaces
// with ids mapped (to 1000/100 inside, as in Nix; an unsandboxed build
// ran with host ids, so they stay what they are), or, for
// sp.NoNamespaces, as ids itself (only host root can, and must, change
// to them).
// ambientCaps are the capabilities the child's set-up needs, in its own
// user namespace only. Mounting the overlay view (or a replay's store
// overlay) needs CAP_DAC_OVERRIDE too (overlayfs prepares its work
// directory with the mounter's credentials).
func ambientCaps(sp *spec) []uintptr {
	caps := []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SYS_CHROOT, unix.CAP_NET_ADMIN}
	overlay := sp.View != nil
	for _, op := range sp.Mounts {
		overlay = overlay || op.Kind == OpMount && op.FSType == "overlay"
	}
	if overlay {
		caps = append(caps, unix.CAP_DAC_OVERRIDE)
	}
	return caps
}

func procAttr(sp *spec, ids Owner) *syscall.SysProcAttr {
	if sp.NoNamespaces {
		a := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
		if isHostRoot() {
			a.Credential = &syscall.Credential{Uid: uint32(ids.UID), Gid: uint32(ids.GID), Groups: []uint32{}}
		}
		return a
	}
	uid, gid := sandboxUID, sandboxGID
	if sp.Unsandboxed {
		uid, gid = ids.UID, ids.GID
	}
	return &syscall.SysProcAttr{
		Cloneflags: cloneFlags(sp),
		UidMappings: []syscall.SysProcIDMap{
			{ContainerID: uid, HostID: ids.UID, Size: 1},
		},
		GidMappings: []syscall.SysProcIDMap{
			{ContainerID: gid, HostID: ids.GID, Size: 1},
		},
		// Nix writes "deny" to setgroups too.
		GidMappingsEnableSetgroups: false,
		Credential:                 &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true},
		// Keep what the set-up needs across the re-exec while
		// already being uid 1000; dropped before the final execve.
		AmbientCaps: ambientCaps(sp),
		// PID 1 of the sandbox is a session leader, as Nix's builder.
		Setsid:    true,
		Pdeathsig: syscall.SIGKILL,
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

// Close releases the pty master; call it after the relay has ended.
func (p *process) Close() {
	if p.master != nil {
		p.master.Close()
	}
}

// Master is the pty master of a TTY sandbox, nil otherwise.
func (p *process) Master() *os.File { return p.master }

// Kill ends the sandbox: killing its PID 1 makes the kernel kill every
// process in its PID namespace. Without one, Wait ends the rest.
func (p *process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
}

// Wait waits for the sandbox's PID 1 and returns its exit status in the
// shell's convention: the exit code, or 128+N when killed by signal N.
func (p *process) Wait(ctx context.Context) (int, error) {
	var err error
	select {
	case err = <-p.waitc:
	case <-ctx.Done():
		p.Kill()
		err = <-p.waitc
	}
	if p.noPIDNS {
		endOrphans(p.before)
	}
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return interrupt.Status(ee.ProcessState), nil
	}
	return -1, err
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
func reportChanges(kept string, ws *workspace, changed func(diff.Summary), log *slog.Logger) {
	compare := diff.Trees
	copy := ws.dir.build()
	if ws.view != nil {
		compare, copy = diff.Overlay, ws.view.Upper
	}
	cs, err := compare(kept, copy, diff.Options{Ignore: ws.notCopied})
	if err != nil {
		log.Debug("cannot compare /build with the kept directory", "err", err)
		return
	}
	if s := diff.Summarize(cs); !s.Empty() {
		log.Debug("/build changed", "summary", s.String())
		changed(s)
	}
}
