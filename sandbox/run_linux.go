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
	"strings"
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

// child is a sandbox child started before its spec is known (spawn):
// its namespaces made, nbs started in them and waiting on specFD. The
// start costs as much as the rest of a session's set-up; a session
// spawns its child first and prepares the workspace meanwhile (the Go
// runtime of the child starts while the parent copies or views the kept
// directory), then hands it the spec (begin).
type child struct {
	key childKey
	cp  *childPipes
	// files is the parent's end of the socket on which the view's
	// descriptors follow the spec (sendViewFiles).
	files *os.File
	p     *process
	used  bool
}

// childKey is what a child's start depends on: its clone flags, id maps
// and descriptors. A spec with another key needs another child.
type childKey struct {
	ids                                     Owner
	unsandboxed, noNamespaces, hostNet, tty bool
	stdin, stdout, stderr                   *os.File
}

func keyOf(sp *spec, ids Owner, stdin, stdout, stderr *os.File) childKey {
	return childKey{ids: ids, unsandboxed: sp.Unsandboxed, noNamespaces: sp.NoNamespaces, hostNet: sp.HostNetwork, tty: sp.TTY,
		stdin: stdin, stdout: stdout, stderr: stderr}
}

// spec is the part of a spec the key fixes.
func (k childKey) spec() *spec {
	return &spec{Unsandboxed: k.unsandboxed, NoNamespaces: k.noNamespaces, HostNetwork: k.hostNet, TTY: k.tty}
}

// spawn starts the sandbox child for a spec with key k, with the host
// ids mapped to 1000/100 (see procAttr). Without a TTY the child gets
// stdin, stdout and stderr as they are.
func spawn(k childKey) (*child, error) {
	sp := k.spec()
	cp, err := newChildPipes(sp.TTY, k.stdin, k.stdout)
	if err != nil {
		return nil, err
	}
	c := &child{key: k, cp: cp}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		cp.close()
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	c.files = os.NewFile(uintptr(fds[0]), "view-files")
	filesChild := os.NewFile(uintptr(fds[1]), "view-files-child")
	cp.all = append(cp.all, c.files, filesChild)
	// specFD, errFD, ptyFD (a place holder without a TTY), then the
	// socket the view's descriptors come on, at viewFD.
	extra := []*os.File{cp.specR, cp.errW, cp.ptyChild, filesChild}
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{childArg0},
		Env:         []string{},
		Stdin:       cp.stdin,
		Stdout:      cp.stdout,
		Stderr:      k.stderr,
		ExtraFiles:  extra,
		SysProcAttr: procAttr(sp, k.ids),
	}
	p := &process{cmd: cmd, waitc: make(chan error, 1), noPIDNS: sp.NoNamespaces}
	if p.noPIDNS {
		if err := becomeSubreaper(); err != nil {
			cp.close()
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
		cp.close()
		if sp.NoNamespaces {
			return nil, fmt.Errorf("start the build's shell: %w", err)
		}
		return nil, refusedStart(sp, k.ids, startError(err))
	}
	for _, f := range []*os.File{cp.specR, cp.errW, cp.ptyChild, filesChild} {
		if f != nil {
			f.Close()
		}
	}
	c.p = p
	return c, nil
}

// discard ends a child that was never given its spec; nil and used
// children are left alone.
func (c *child) discard() {
	if c == nil || c.used {
		return
	}
	c.used = true
	c.p.Kill()
	<-c.p.waitc
	c.cp.close()
}

// start starts the sandbox of sp as ids on c when it fits (a child
// spawned for the same key and not used yet), else on a child of its
// own, and waits until it has exec'd the command (or failed a set-up
// step).
func start(c *child, sp *spec, ids Owner, view *viewFiles, stdin, stdout, stderr *os.File) (*process, error) {
	k := keyOf(sp, ids, stdin, stdout, stderr)
	if c == nil || c.used || c.key != k {
		c.discard()
		var err error
		if c, err = spawn(k); err != nil {
			return nil, err
		}
	}
	return c.begin(sp, view)
}

// begin hands the child its spec and the view's descriptors and waits
// until it has exec'd the command (or failed a set-up step).
func (c *child) begin(sp *spec, view *viewFiles) (*process, error) {
	c.used = true
	defer c.cp.close()
	p, cp := c.p, c.cp
	readyR, err := c.sendViewFiles(sp, view)
	if err != nil {
		p.Kill()
		<-p.waitc
		return nil, err
	}
	if readyR != nil {
		defer readyR.Close()
	}
	if err := json.NewEncoder(cp.specW).Encode(sp); err != nil {
		// The child died before reading it: its own report says why.
		if msg, _ := io.ReadAll(cp.errR); len(msg) > 0 {
			p.Kill()
			return nil, refusedStart(sp, c.key.ids, childFailure(msg))
		}
		p.Kill()
		return nil, fmt.Errorf("send spec to sandbox: %w", err)
	}
	cp.specW.Close()

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
	msg, err := io.ReadAll(cp.errR)
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("read sandbox status: %w", err)
	}
	if len(msg) > 0 {
		p.Kill()
		return nil, refusedStart(sp, c.key.ids, childFailure(msg))
	}
	if cp.ptyParent != nil {
		m, err := recvFD(cp.ptyParent)
		if err != nil {
			p.Kill()
			return nil, fmt.Errorf("receive pty from sandbox: %w", err)
		}
		p.master = m
	}
	return p, nil
}

// sendViewFiles sends the child the view's descriptors in one message on
// the socket at its viewFD, in the order placeViewFiles takes them: the
// idmapped kept directory (View.LowerFD), then, for a FUSE view, the
// child's end of a new socket the mounted /dev/fuse comes back on, whose
// parent end it returns. A spec without them gets no message.
func (c *child) sendViewFiles(sp *spec, view *viewFiles) (*os.File, error) {
	defer c.files.Close()
	v := sp.View
	if v == nil || !v.LowerFD && !v.FUSE {
		return nil, nil
	}
	var rights []int
	if v.LowerFD {
		if view == nil || view.fd == nil {
			return nil, errors.New("the view's idmapped kept directory is missing")
		}
		rights = append(rights, int(view.fd.Fd()))
	}
	var readyR *os.File
	if v.FUSE {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("socketpair: %w", err)
		}
		readyR = os.NewFile(uintptr(fds[0]), "view-parent")
		defer unix.Close(fds[1])
		rights = append(rights, fds[1])
	}
	if err := unix.Sendmsg(int(c.files.Fd()), []byte{0}, unix.UnixRights(rights...), nil, 0); err != nil {
		if readyR != nil {
			readyR.Close()
		}
		return nil, fmt.Errorf("send the view's descriptors to the sandbox: %w", err)
	}
	return readyR, nil
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

// ambientCaps are the capabilities the child's set-up needs, in its own
// user namespace only. Mounting the overlay view (or a replay's store
// overlay) needs CAP_DAC_OVERRIDE too (overlayfs prepares its work
// directory with the mounter's credentials); the child gets it whether
// or not its spec will have one, which is not known when it is spawned. Inside its user
// namespace it overrides permissions only on files of the one mapped
// id, the sandbox user's own, and execCommand drops it with the rest.
func ambientCaps() []uintptr {
	return []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SYS_CHROOT, unix.CAP_NET_ADMIN, unix.CAP_DAC_OVERRIDE}
}

// procAttr is how the child of sp is started as ids: in its namespaces
// with ids mapped (to 1000/100 inside, as in Nix; an unsandboxed build
// ran with host ids, so they stay what they are), or, for
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
		AmbientCaps: ambientCaps(),
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
	return runOn(ctx, nil, s, ids, view, stdin, stdout, stderr)
}

// runOn is run on the child c spawned ahead when it fits (see start).
func runOn(ctx context.Context, c *child, s *spec, ids Owner, view *viewFiles, stdin, stdout, stderr *os.File) (int, error) {
	p, err := start(c, s, ids, view, stdin, stdout, stderr)
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
