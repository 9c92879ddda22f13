package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// childArg0 is argv[0] of the re-executed nbs that enters a running
// build (nbs attach, see attach_linux.go): the one start that needs Go
// code inside the sandbox (the build's /nix/store read for --with, the
// command looked up on its PATH). Every other sandbox is set up by a
// program of system calls in a hand-forked child (compileSandbox).
// The role is chosen from it before the CLI runs.
const childArg0 = "nbs-sandbox-child"

// The attach child's inherited descriptors.
const (
	specFD = 3 // parent → child: the spec as JSON, then EOF
	errFD  = 4 // child → parent: a childError as JSON; close-on-exec, so EOF means execve succeeded
	ptyFD  = 5 // child → parent: the pty master, as SCM_RIGHTS (spec.TTY only)
	// The running build's mount namespace, root and current directory
	// (its /proc/PID/ns/mnt, root and cwd).
	mntFD  = 6
	rootFD = 7
	cwdFD  = 8
	toolFD = 9 // the first of spec.Tools
)

// rcFD is where the interactive shell finds spec.RC (bash --rcfile /dev/fd/3).
const rcFD = 3

// The forked child's descriptors: the scratch ones its calls put their
// descriptors on, and, from progFDBase on, the parent's that the program
// uses (moved there with F_DUPFD_CLOEXEC, so that no scratch descriptor
// and none of 0–3 ever overwrites one still needed).
const (
	scratchFD  = 10 // a socket or file, closed again
	fsFD       = 11 // fsopen's file system context
	fsMountFD  = 12 // fsmount's detached mount
	fuseFD     = 13 // /dev/fuse
	masterFD   = 14 // the pty master
	slaveFD    = 15 // the pty slave
	progFDBase = 20
)

// IsChild reports whether this process is the attach child (or the
// namespace probe, see probeArg0).
func IsChild() bool {
	return len(os.Args) > 0 && (os.Args[0] == childArg0 || os.Args[0] == probeArg0)
}

// childError is how a failed set-up step travels to the parent.
type childError struct {
	Step string `json:"step"`
	Err  string `json:"err"`
}

// ChildMain enters the running build and execs the command. It never
// returns: on failure it reports the step on errFD and exits 127.
func ChildMain() {
	if os.Args[0] == probeArg0 {
		probeMain()
	}
	// Capabilities, no_new_privs and seccomp are per thread: everything
	// runs on this one thread, which ends in execve.
	runtime.LockOSThread()
	err := runAttachChild() // returns only when a step failed
	var se *setupError
	if !errors.As(err, &se) {
		se = &setupError{Step: "unknown", Msg: err.Error()}
	}
	b, _ := json.Marshal(childError{Step: se.Step, Err: se.Msg})
	if _, werr := unix.Write(errFD, b); werr != nil {
		fmt.Fprintf(os.Stderr, "nbs: sandbox set-up: %v\n", se)
	}
	os.Exit(127)
}

// runAttachChild joins the build's mounts in Go, then runs the program
// of the terminal and exec steps, the same any sandbox ends with.
func runAttachChild() error {
	sp, err := readSpec()
	if err != nil {
		return &setupError{Step: "read spec", Msg: err.Error()}
	}
	for _, s := range []struct {
		name string
		run  func(*spec) error
	}{
		{"enter the build's mounts", enterBuildMounts},
		{"find command", findCommand},
	} {
		if err := s.run(sp); err != nil {
			return &setupError{Step: s.name, Msg: err.Error()}
		}
	}
	// The pty's descriptors go on numbers this process owns: Go's
	// runtime may hold any other.
	var own [2]int
	for i := range own {
		if own[i], err = unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 0); err != nil {
			return &setupError{Step: "set up terminal", Msg: err.Error()}
		}
	}
	p := &prog{}
	if sp.TTY {
		compileTTY(p, sp, ptyFD, own[0], own[1])
	}
	if err := compileExec(p, sp); err != nil {
		return err
	}
	i, errno := runProg(p.ops)
	runtime.KeepAlive(p)
	return p.failure(i, errno)
}

func readSpec() (*spec, error) {
	for _, fd := range []int{specFD, errFD, ptyFD, mntFD, rootFD, cwdFD} {
		unix.CloseOnExec(fd)
	}
	f := os.NewFile(specFD, "spec")
	defer f.Close()
	var s spec
	if err := json.NewDecoder(f).Decode(&s); err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	if s.Root == "" || len(s.Argv) == 0 {
		return nil, errors.New("decode spec: root or argv missing")
	}
	return &s, nil
}

// childFDs are the parent's descriptors a sandbox's program uses, by
// their numbers in the child (at or above progFDBase, but syncW).
type childFDs struct {
	stdin, stdout, stderr int
	// sync is the read end of a pipe: a byte on it says the id maps
	// are written; its end says nbs is gone. syncW is the write end,
	// where the parent has it: the child's copy, the only other one,
	// which it closes first.
	sync, syncW int
	pty         int // the socket the pty master goes back on (spec.TTY)
	lower       int // the idmapped kept directory (View.LowerFD)
	fuseReady   int // the socket the FUSE device goes back on (View.FUSE)
}

// childIDs are the ids a sandbox's child takes and has inside.
type childIDs struct {
	uid, gid int
	// setGroups: clear the supplementary groups too (host root
	// becoming the build user without namespaces).
	setGroups bool
}

// compileSandbox compiles the set-up of sp for the forked child, in Nix's
// order (runChild in derivation-builder.cc): the process's ids, network,
// UTS, mounts, pivot_root, the terminal, then the per-process state and
// execve. userNS: the child is in a new user namespace whose id maps
// the parent writes while it waits on fds.sync.
func compileSandbox(sp *spec, ids childIDs, userNS bool, fds childFDs) (*prog, error) {
	p := &prog{}
	compileStart(p, ids, userNS, fds)
	sandboxed := !sp.Unsandboxed
	if sandboxed {
		compileLoopback(p, sp)
		compileUTS(p, sp)
	}
	if !sp.NoNamespaces {
		p.begin("make mounts private")
		mountOp(p, "", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
		if sp.View != nil {
			p.begin(viewStep)
			compileView(p, sp.View, ids, fds)
		}
	}
	if sandboxed {
		// A tmpfs on Root: the new root, a mount point of its own as
		// pivot_root needs, whose skeleton (the plan's directories,
		// files, symlinks and mount points) lives in memory and
		// vanishes with the sandbox's mount namespace. Nix builds it
		// in a directory on disk
		// (src/libstore/unix/build/chroot-derivation-builder.cc,
		// ChrootDerivationBuilder::prepareSandbox); on disk each of
		// those entries costs the start and the clean-up a synchronous
		// metadata write. The mapped sandbox user makes the mount and
		// owns its top, as it owned the directory; it is read-only
		// after pivot_root, so its size is never used.
		p.begin("mount new root")
		mountOp(p, "tmpfs", sp.Root, "tmpfs", 0, "mode=0755")
	}
	if !sp.NoNamespaces {
		p.begin("apply mount plan")
		pc := newPlanCompiler(p, sp.Root)
		if sp.View != nil {
			// The view's root is a directory: not asking the view
			// spares a FUSE view a request that would wait for its
			// server, which starts meanwhile (see OpChmod).
			pc.dirs[sp.View.Target] = true
		}
		for _, op := range sp.Mounts {
			if err := pc.op(op); err != nil {
				return nil, &setupError{Step: "apply mount plan", Msg: err.Error()}
			}
		}
	}
	if sandboxed {
		compilePivotRoot(p, sp.Root)
		// In Nix, /, /etc and /dev belong to the daemon's root, which
		// is unmapped inside, so a build cannot write there (EACCES).
		// Our skeleton belongs to the mapped caller; a read-only mount
		// is the nearest equivalent (EROFS). /build, /tmp, /dev/shm
		// and /dev/pts are mounts of their own and stay writable.
		p.begin("make / read-only")
		if err := readOnly(p, "/", false, 0); err != nil {
			return nil, &setupError{Step: "make / read-only", Msg: err.Error()}
		}
	}
	if sp.TTY {
		compileTTY(p, sp, fds.pty, masterFD, slaveFD)
	}
	if err := compileExec(p, sp); err != nil {
		return nil, err
	}
	return p, nil
}

// compileStart: the child's first steps, what os/exec's SysProcAttr did
// (Setsid, the id maps, Credential, Pdeathsig): a session of its own,
// stdio, the ids once the parent has written their maps, and death with nbs's
// forking thread, after the id change, which clears it; a parent gone
// before that shows as the end of the sync pipe.
func compileStart(p *prog, ids childIDs, userNS bool, fds childFDs) {
	p.begin("start")
	// A session of its own at once: out of nbs's process group, which
	// the terminal's ^C and ^Z reach.
	p.call("setsid", unix.SYS_SETSID)
	// Before stdio goes on 0-2, where the write end may be too (a
	// parent started with a closed stdin).
	p.call("close the sync pipe's write end", unix.SYS_CLOSE, uintptr(fds.syncW))
	for i, fd := range []int{fds.stdin, fds.stdout, fds.stderr} {
		p.call(fmt.Sprintf("dup stdio to fd %d", i), unix.SYS_DUP3, uintptr(fd), uintptr(i), 0)
	}
	var b [1]byte
	p.call("wait for the id maps", unix.SYS_READ, uintptr(fds.sync), p.ptr(&b, unsafe.Pointer(&b[0])), 1).returns(1)
	if ids.setGroups {
		p.call("setgroups", unix.SYS_SETGROUPS, 0, 0)
	}
	if userNS || ids.setGroups {
		p.call(fmt.Sprintf("setresgid %d", ids.gid), unix.SYS_SETRESGID, uintptr(ids.gid), uintptr(ids.gid), uintptr(ids.gid))
		p.call(fmt.Sprintf("setresuid %d", ids.uid), unix.SYS_SETRESUID, uintptr(ids.uid), uintptr(ids.uid), uintptr(ids.uid))
	}
	p.call("prctl PR_SET_PDEATHSIG", unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL))
	// A poll that does not wait (a zero timeout): the write end's close
	// shows as POLLHUP.
	pfd, ts := &unix.PollFd{Fd: int32(fds.sync)}, &unix.Timespec{}
	p.call("check that nbs is still there", unix.SYS_PPOLL, p.ptr(pfd, unsafe.Pointer(pfd)), 1, p.ptr(ts, unsafe.Pointer(ts))).returns(0)
}

// compileLoopback brings lo up the way Nix does: SIOCSIFFLAGS with
// IFF_UP|IFF_LOOPBACK|IFF_RUNNING on a datagram socket. The kernel then
// gives lo 127.0.0.1/8 and ::1/128 by itself.
func compileLoopback(p *prog, sp *spec) {
	if sp.HostNetwork {
		return
	}
	p.begin("bring up loopback")
	p.call("socket", unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0).into(scratchFD)
	ifr, _ := unix.NewIfreq("lo")
	ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
	p.call("ioctl SIOCSIFFLAGS lo", unix.SYS_IOCTL, scratchFD, unix.SIOCSIFFLAGS, p.ptr(ifr, unsafe.Pointer(ifr)))
	p.call("close", unix.SYS_CLOSE, scratchFD)
}

func compileUTS(p *prog, sp *spec) {
	p.begin("set host name")
	p.call(fmt.Sprintf("sethostname %q", sp.Hostname), unix.SYS_SETHOSTNAME, p.str(sp.Hostname), uintptr(len(sp.Hostname)))
	p.call(fmt.Sprintf("setdomainname %q", sp.Domainname), unix.SYS_SETDOMAINNAME, p.str(sp.Domainname), uintptr(len(sp.Domainname)))
}

// mountOp adds mount(2), described as mountError describes a failure.
func mountOp(p *prog, source, target, fstype string, flags uintptr, data string) {
	what := (&mountError{source: source, target: target, fstype: fstype, data: data, flags: flags}).describe()
	var src, fs, d uintptr
	if source != "" {
		src = p.str(source)
	}
	if fstype != "" {
		fs = p.str(fstype)
	}
	if data != "" {
		d = p.str(data)
	}
	p.call(what, unix.SYS_MOUNT, src, p.str(target), fs, flags, d)
}

// planCompiler compiles the mount plan below root.
type planCompiler struct {
	p    *prog
	root string
	// made are the directories already made (or known to exist).
	made map[string]bool
	// dirs are bind sources known to be directories (the view's
	// root); bound are the targets they were bound on.
	dirs, bound map[string]bool
}

// newPlanCompiler compiles into p a plan below root, which exists.
func newPlanCompiler(p *prog, root string) *planCompiler {
	return &planCompiler{p: p, root: root, made: map[string]bool{root: true}, dirs: map[string]bool{}, bound: map[string]bool{}}
}

// op compiles one step of the mount plan.
func (c *planCompiler) op(op Op) error {
	if !filepath.IsAbs(op.Target) || strings.Contains(op.Target, "/../") || strings.HasSuffix(op.Target, "/..") {
		return fmt.Errorf("%s: target must be a clean absolute path", op)
	}
	p := c.p
	t := filepath.Join(c.root, op.Target)
	switch op.Kind {
	case OpMkdir:
		c.parents(t)
		p.call("mkdir "+t, unix.SYS_MKDIRAT, atFDCWD, p.str(t), 0o700).accept(unix.EEXIST)
		c.made[t] = true
		chmodOp(p, t, op.Mode)
	case OpFile:
		c.parents(t)
		p.call("open "+t, unix.SYS_OPENAT, atFDCWD, p.str(t), unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600).into(scratchFD)
		if len(op.Data) > 0 {
			p.call("write "+t, unix.SYS_WRITE, scratchFD, p.bytes([]byte(op.Data)), uintptr(len(op.Data))).returns(int64(len(op.Data)))
		}
		p.call("close "+t, unix.SYS_CLOSE, scratchFD)
		chmodOp(p, t, op.Mode)
	case OpSymlink:
		c.parents(t)
		p.call(op.String(), unix.SYS_SYMLINKAT, p.str(op.Source), atFDCWD, p.str(t))
	case OpBind:
		return c.bind(t, op, op.Source)
	case OpRebind:
		if !filepath.IsAbs(op.Source) || filepath.Clean(op.Source) != op.Source {
			return fmt.Errorf("%s: source must be a clean absolute path", op)
		}
		inside := op
		inside.Kind, inside.Optional, inside.KeepSymlink = OpBind, false, false
		return c.bind(t, inside, filepath.Join(c.root, op.Source))
	case OpMount:
		c.parents(t)
		if !c.made[t] {
			p.call("mkdir "+t, unix.SYS_MKDIRAT, atFDCWD, p.str(t), 0o755).accept(unix.EEXIST)
			c.made[t] = true
		}
		mountOp(p, op.FSType, t, op.FSType, 0, op.Data)
	case OpChmod:
		if c.bound[t] {
			// The first request to a FUSE view, after the rest of
			// the set-up: its root's attributes are the kernel's
			// placeholder (uid 0, unmapped here: EOVERFLOW) until a
			// stat asks the server.
			st := new(unix.Stat_t)
			p.call("stat "+t, unix.SYS_NEWFSTATAT, atFDCWD, p.str(t), p.ptr(st, unsafe.Pointer(st)), 0)
		}
		chmodOp(p, t, op.Mode)
	default:
		return fmt.Errorf("unknown mount plan step %q", op.Kind)
	}
	return nil
}

const atFDCWD = ^uintptr(99) // AT_FDCWD, -100

// parents makes the directories above t (mode 0755), as os.MkdirAll.
func (c *planCompiler) parents(t string) {
	dir := filepath.Dir(t)
	var todo []string
	for d := dir; !c.made[d] && d != "/" && d != "."; d = filepath.Dir(d) {
		todo = append(todo, d)
	}
	for i := len(todo) - 1; i >= 0; i-- {
		d := todo[i]
		c.p.call("mkdir "+d, unix.SYS_MKDIRAT, atFDCWD, c.p.str(d), 0o755).accept(unix.EEXIST)
		c.made[d] = true
	}
}

func chmodOp(p *prog, path string, mode uint32) {
	p.call(fmt.Sprintf("chmod %s %#o", path, mode), unix.SYS_FCHMODAT, atFDCWD, p.str(path), uintptr(mode))
}

// bind binds source on t, creating t as a directory or an empty file to
// match the source (a bind needs a target of the same kind). What can
// be known of a host source is asked now: whether it is there
// (op.Optional), whether it is a symlink to re-create (op.KeepSymlink),
// its mount's flags (readOnly).
func (c *planCompiler) bind(t string, op Op, source string) error {
	p := c.p
	if op.KeepSymlink {
		if target, err := os.Readlink(source); err == nil {
			c.parents(t)
			p.call(fmt.Sprintf("%s: symlink %s -> %s", op, t, target), unix.SYS_SYMLINKAT, p.str(target), atFDCWD, p.str(t))
			return nil
		}
	}
	if op.Optional {
		if _, err := os.Stat(source); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	c.parents(t)
	if c.dirs[source] {
		if !c.made[t] {
			p.call("mkdir "+t, unix.SYS_MKDIRAT, atFDCWD, p.str(t), 0o755).accept(unix.EEXIST)
			c.made[t] = true
		}
		c.bound[t] = true
	} else {
		p.call(op.String(), opBindTarget, p.str(source), p.str(t)).stat = new(unix.Stat_t)
	}
	flags := uintptr(unix.MS_BIND)
	if op.Recursive {
		flags |= unix.MS_REC
	}
	mountOp(p, source, t, "", flags, "")
	if op.Shared {
		mountOp(p, "", t, "", unix.MS_SHARED, "")
	}
	if op.ReadOnly {
		var keep uintptr
		if !hasMountSetattr() {
			var fs unix.Statfs_t
			if err := unix.Statfs(source, &fs); err != nil {
				return fmt.Errorf("statfs %s: %w", source, err)
			}
			keep = uintptr(fs.Flags)
		}
		return readOnly(p, t, op.Recursive, keep)
	}
	return nil
}

// readOnly sets MOUNT_ATTR_RDONLY on the mount at path (and, with
// recursive, on every mount below it). mount_setattr changes only that
// flag; a classic MS_REMOUNT, the fallback of kernels before 5.12, has
// to repeat the mount's locked flags (of flags, its statfs flags) or
// fails with EPERM inside a user namespace.
func readOnly(p *prog, path string, recursive bool, flags uintptr) error {
	if hasMountSetattr() {
		var at uintptr
		if recursive {
			at = unix.AT_RECURSIVE
		}
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		p.call(fmt.Sprintf("mount_setattr %s MOUNT_ATTR_RDONLY", path), unix.SYS_MOUNT_SETATTR, atFDCWD, p.str(path), at, p.ptr(attr, unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
		return nil
	}
	if recursive {
		return fmt.Errorf("mount_setattr %s MOUNT_ATTR_RDONLY: %w", path, unix.ENOSYS)
	}
	keep := flags & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	mountOp(p, "", path, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|keep, "")
	return nil
}

// hasMountSetattr: the kernel has mount_setattr (Linux 5.12). An empty
// attribute set on no descriptor fails with EINVAL there.
var hasMountSetattr = sync.OnceValue(func() bool {
	_, _, e := unix.Syscall6(unix.SYS_MOUNT_SETATTR, ^uintptr(0), 0, 0, 0, 0, 0)
	return e != unix.ENOSYS
})

// compilePivotRoot swaps the root as Nix does: pivot_root(".",
// "real-root"), chroot("."), then detach and remove the old root, so
// nothing of the host's tree stays reachable.
func compilePivotRoot(p *prog, root string) {
	p.begin("pivot_root")
	p.call("chdir "+root, unix.SYS_CHDIR, p.str(root))
	p.call("mkdir real-root", unix.SYS_MKDIRAT, atFDCWD, p.str("real-root"), 0o500)
	p.call("pivot_root . real-root", unix.SYS_PIVOT_ROOT, p.str("."), p.str("real-root"))
	p.call("chroot .", unix.SYS_CHROOT, p.str("."))
	p.call("umount /real-root", unix.SYS_UMOUNT2, p.str("/real-root"), unix.MNT_DETACH)
	p.call("rmdir /real-root", unix.SYS_UNLINKAT, atFDCWD, p.str("/real-root"), unix.AT_REMOVEDIR)
}

// compileTTY gives the command a terminal of its own: a pty from the
// sandbox's devpts instance, the master sent to the parent on sock, which
// relays it to the user's terminal, the slave the controlling terminal
// and stdio. The sandbox never holds a descriptor of the user's
// terminal, so TIOCSTI there is impossible. master and slave are the
// descriptors the two go on.
func compileTTY(p *prog, sp *spec, sock, master, slave int) {
	p.begin("set up terminal")
	ptmx := "/dev/pts/ptmx"
	if sp.Unsandboxed {
		ptmx = "/dev/ptmx" // the host's devpts, whose own ptmx is 0000
	}
	p.call("open "+ptmx, unix.SYS_OPENAT, atFDCWD, p.str(ptmx), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC).into(master)
	var unlock int32
	p.call("unlock pty", unix.SYS_IOCTL, uintptr(master), unix.TIOCSPTLCK, p.ptr(&unlock, unsafe.Pointer(&unlock)))
	// The slave from the master itself (Linux 4.13), not by a name in
	// /dev/pts.
	p.call("open the pty's slave", unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC).into(slave)
	sendFD(p, "send pty master", sock, master)
	p.call("close the pty master", unix.SYS_CLOSE, uintptr(master))
	// We are PID 1 and a session leader (setsid).
	p.call("make the pty the controlling terminal", unix.SYS_IOCTL, uintptr(slave), unix.TIOCSCTTY, 0)
	for fd := 0; fd <= 2; fd++ {
		p.call(fmt.Sprintf("dup the pty to fd %d", fd), unix.SYS_DUP3, uintptr(slave), uintptr(fd), 0)
	}
	p.call("close the pty slave", unix.SYS_CLOSE, uintptr(slave))
}

// sendFD adds the sending of descriptor fd, as SCM_RIGHTS with one byte,
// on the socket sock.
func sendFD(p *prog, what string, sock, fd int) {
	b := []byte{0}
	oob := unix.UnixRights(fd)
	msg := &unix.Msghdr{}
	iov := &unix.Iovec{Base: &b[0]}
	iov.SetLen(1)
	msg.Iov = iov
	msg.SetIovlen(1)
	msg.Control = &oob[0]
	msg.SetControllen(len(oob))
	p.keep = append(p.keep, b, oob, iov)
	p.call(what, unix.SYS_SENDMSG, uintptr(sock), p.ptr(msg, unsafe.Pointer(msg)), 0).returns(1)
}

// enterBuildMounts joins the running build's mount namespace, root and
// directory (spec.Attach). setns(CLONE_NEWNS) refuses a thread that
// shares its fs_struct (root, cwd, umask) with others, as every Go
// thread does; this one, which ends in execve, gets its own first.
func enterBuildMounts(s *spec) error {
	if !s.Attach {
		return nil
	}
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare CLONE_FS: %w", err)
	}
	if err := unix.Setns(mntFD, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("setns mount namespace: %w", err)
	}
	if err := unix.Fchdir(rootFD); err != nil {
		return fmt.Errorf("fchdir to the build's root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot to the build's root: %w", err)
	}
	if len(s.Tools) > 0 {
		if err := addTools(s.Tools); err != nil {
			return err
		}
	}
	if err := unix.Fchdir(cwdFD); err != nil {
		return fmt.Errorf("fchdir to the builder's directory: %w", err)
	}
	for _, fd := range []int{mntFD, rootFD, cwdFD} {
		unix.Close(fd)
	}
	return nil
}

// addTools shows the --with tools in a copy of the build's mount
// namespace that only the attached command uses: the build's own
// /nix/store directory and its files stay as they are. The copy's
// /nix/store becomes a read-only tmpfs holding the entries the build's
// has (each its own bind, so they stay live) and the tools (detached
// mounts nbs cloned from the host's store). An entry the build creates
// later in its /nix/store (an output not begun yet) is not seen here.
func addTools(tools []string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	// Slave: the build's mounts still reach the copy, nothing of the
	// copy reaches the build.
	if err := mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return err
	}
	const store = "/nix/store"
	entries, err := os.ReadDir(store)
	if err != nil {
		return err
	}
	type entry struct {
		name, link string
		fd         int
		dir        bool
	}
	var keep []entry
	for _, e := range entries {
		p := store + "/" + e.Name()
		if e.Type()&os.ModeSymlink != 0 {
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			keep = append(keep, entry{name: e.Name(), link: l, fd: -1})
			continue
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, p, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return fmt.Errorf("open_tree %s: %w", p, err)
		}
		keep = append(keep, entry{name: e.Name(), fd: fd, dir: e.IsDir()})
	}
	for i, t := range tools {
		keep = append(keep, entry{name: filepath.Base(t), fd: toolFD + i, dir: true})
	}
	if err := mount("tmpfs", store, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1775"); err != nil {
		return err
	}
	for _, e := range keep {
		p := store + "/" + e.name
		switch {
		case e.fd < 0:
			err = os.Symlink(e.link, p)
		case e.dir:
			err = os.Mkdir(p, 0o555)
		default:
			err = os.WriteFile(p, nil, 0o444)
		}
		if err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if e.fd >= 0 {
			if err := unix.MoveMount(e.fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return fmt.Errorf("move_mount %s: %w", p, err)
			}
			unix.Close(e.fd)
		}
	}
	p := &prog{}
	p.begin("make /nix/store read-only")
	if err := readOnly(p, store, false, unix.MS_NOSUID|unix.MS_NODEV); err != nil {
		return err
	}
	if i, errno := runProg(p.ops); i < len(p.ops) {
		return p.failure(i, errno)
	}
	runtime.KeepAlive(p)
	return nil
}

// findCommand looks Argv[0] up on the environment's PATH when it is a
// bare name, as a shell would (nbs attach NAME make): inside the build's
// root, where the command will run.
func findCommand(s *spec) error {
	// With Exe, Argv[0] is only the program's name.
	if s.Exe != "" || strings.Contains(s.Argv[0], "/") {
		return nil
	}
	pathEnv := ""
	for _, kv := range s.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, s.Argv[0])
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && unix.Access(p, unix.X_OK) == nil {
			s.Argv[0] = p
			return nil
		}
	}
	return fmt.Errorf("%s: not found in the build's PATH (%s)", s.Argv[0], pathEnv)
}
