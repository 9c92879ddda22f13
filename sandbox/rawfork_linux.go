package sandbox

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Joining a running build needs setns(CLONE_NEWUSER), which the kernel
// allows only to a single-threaded caller (userns_install in
// kernel/user_namespace.c: "Tasks that share a thread group must share a
// user namespace"), and setns(CLONE_NEWNS), which needs an fs_struct of
// its own. A Go process is never single-threaded, not even in init(), and
// os/exec has no setns step between fork and execve. runc and nsenter do
// it in C before the Go runtime (or none) starts; nbs builds without cgo.
// So, as package syscall's own forkAndExecInChild does and gVisor does
// for its stubs, nbs forks by hand: the child is a copy of one thread
// that runs only the nosplit code below, raw system calls on memory the
// parent prepared, and ends in execveat of nbs itself, the sandbox child,
// inside the build's user namespace and all others but the mount one,
// which the sandbox child then joins from a thread with an fs_struct of
// its own (unshare(CLONE_FS)), the one exception the kernel makes for
// multi-threaded callers. The runtime's fork hooks
// (the ones package syscall uses, which the runtime keeps for exactly
// such callers, go.dev/issue/67401) block signals around the fork and
// make any stack growth in the child fail loudly instead of corrupting
// it.

//go:linkname runtimeBeforeFork syscall.runtime_BeforeFork
func runtimeBeforeFork()

//go:linkname runtimeAfterFork syscall.runtime_AfterFork
func runtimeAfterFork()

//go:linkname runtimeAfterForkInChild syscall.runtime_AfterForkInChild
func runtimeAfterForkInChild()

// rawJoin is everything the hand-forked child needs, prepared by the
// parent: descriptors (all ≥ rawFDBase, so that placing them on 0–5
// never overwrites one still to be placed) and C strings.
type rawJoin struct {
	pidfd   uintptr // the builder, for setns
	nsFlags uintptr // namespaces to join (the PID one is the forking thread's)
	exeFD   uintptr // nbs itself
	// mounts are the builder's mount namespace, root and directory,
	// for mntFD, rootFD and cwdFD.
	mounts []uintptr
	// toolFDs are detached mounts of Spec.Tools, for toolFD on.
	toolFDs []uintptr
	tools   []string
	own     []int   // descriptors to close after the fork
	errFD   uintptr // a rawFailure goes here
	uid     uintptr // ids inside the build's user namespace
	gid     uintptr
	groups  []uint32 // host supplementary groups, set before joining
	// place are the descriptors that become 0, 1, 2, … in the child
	// (stdio, then the sandbox child's, see child_linux.go).
	place []uintptr
	argv  []*byte // nil-terminated
	envv  []*byte // nil-terminated
	empty *byte   // "" for execveat(AT_EMPTY_PATH)
	// nofile, when set, is the RLIMIT_NOFILE nbs started with, for the
	// sandbox child to find as its own (nofileToRestore).
	nofile *unix.Rlimit
}

// rawFDBase: the parent moves every descriptor the child gets to or above
// this number.
const rawFDBase = 100

// The steps of the hand-forked child, in order; a failure reports the
// step and the errno.
const (
	rawStepSetsid = iota + 1
	rawStepGroups
	rawStepSetns
	rawStepIDs
	rawStepCaps
	rawStepDeathSig
	rawStepSubreaper
	rawStepPlace
	rawStepNofile
	rawStepExec
)

var rawStepNames = map[byte]string{
	rawStepSetsid:    "setsid",
	rawStepGroups:    "set supplementary groups",
	rawStepSetns:     "join the build's namespaces",
	rawStepIDs:       "become the build user",
	rawStepCaps:      "keep the capabilities to enter the build's mounts",
	rawStepDeathSig:  "set parent-death signal",
	rawStepSubreaper: "become a subreaper",
	rawStepPlace:     "place descriptors",
	rawStepNofile:    "restore RLIMIT_NOFILE",
	rawStepExec:      "exec nbs",
}

// rawFailureMagic starts a failure record of the hand-forked child on
// the error pipe; the sandbox child's own reports are JSON ('{').
const rawFailureMagic = 0xff

// rawFork forks a child that joins the build and execs the sandbox
// child. It runs on a locked thread (whose PID namespace for children is
// the build's); the caller holds syscall.ForkLock. The child's pidfd goes
// to *pidfd, as in forkProg.
//
//go:nosplit
//go:norace
func rawFork(j *rawJoin, pidfd *int32) (pid uintptr, errno syscall.Errno) {
	runtimeBeforeFork()
	pid, _, errno = syscall.RawSyscall6(unix.SYS_CLONE, unix.CLONE_PIDFD|uintptr(syscall.SIGCHLD), 0, uintptr(unsafe.Pointer(pidfd)), 0, 0, 0)
	if errno != 0 || pid != 0 {
		runtimeAfterFork()
		return pid, errno
	}
	runtimeAfterForkInChild()
	rawJoinChild(j)
	return 0, 0 // not reached
}

// rawJoinChild is the hand-forked child: raw system calls only, no
// allocation, no stack growth.
//
//go:nosplit
//go:norace
func rawJoinChild(j *rawJoin) {
	var step byte
	var err syscall.Errno
	var capHdr unix.CapUserHeader
	var capData [2]unix.CapUserData
	// A session of its own: the pty's controlling terminal later.
	if _, _, err = syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); err != 0 {
		step = rawStepSetsid
		goto fail
	}
	// The builder's groups, as host ids, while still host root: the
	// build's user namespace denies setgroups.
	if len(j.groups) > 0 {
		_, _, err = syscall.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(j.groups)), uintptr(unsafe.Pointer(&j.groups[0])), 0)
	} else {
		_, _, err = syscall.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0)
	}
	if err != 0 {
		step = rawStepGroups
		goto fail
	}
	// All at once through the pidfd: the kernel enters the user
	// namespace first and checks the others with its credentials. Not
	// the mount namespace: nbs may be linked dynamically, and execve
	// looks for its interpreter in the mount namespace it runs in.
	if j.nsFlags != 0 {
		if _, _, err = syscall.RawSyscall(unix.SYS_SETNS, j.pidfd, j.nsFlags, 0); err != 0 {
			step = rawStepSetns
			goto fail
		}
	}
	// Group first, then user. The capabilities setns gave stay (the
	// host's root is not root in the build's namespace, so no setuid
	// fixup clears them), but execve keeps none for a uid that is not
	// root there, except the ambient ones raised below.
	if _, _, err = syscall.RawSyscall(unix.SYS_SETRESGID, j.gid, j.gid, j.gid); err != 0 {
		step = rawStepIDs
		goto fail
	}
	if _, _, err = syscall.RawSyscall(unix.SYS_SETRESUID, j.uid, j.uid, j.uid); err != 0 {
		step = rawStepIDs
		goto fail
	}
	// The sandbox child needs CAP_SYS_ADMIN and CAP_SYS_CHROOT in the
	// build's namespace to join its mount namespace and root after the
	// execve (see enterBuildMounts); it drops them before its own.
	capHdr.Version = unix.LINUX_CAPABILITY_VERSION_3
	capData[0] = unix.CapUserData{Effective: ^uint32(0), Permitted: ^uint32(0), Inheritable: 1<<unix.CAP_SYS_ADMIN | 1<<unix.CAP_SYS_CHROOT}
	capData[1] = unix.CapUserData{Effective: ^uint32(0), Permitted: ^uint32(0)}
	if _, _, err = syscall.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&capHdr)), uintptr(unsafe.Pointer(&capData[0])), 0); err != 0 {
		step = rawStepCaps
		goto fail
	}
	if _, _, err = syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, unix.CAP_SYS_ADMIN, 0, 0, 0); err != 0 {
		step = rawStepCaps
		goto fail
	}
	if _, _, err = syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, unix.CAP_SYS_CHROOT, 0, 0, 0); err != 0 {
		step = rawStepCaps
		goto fail
	}
	// After the id change, which clears it: end with nbs.
	if _, _, err = syscall.RawSyscall6(unix.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0, 0); err != 0 {
		step = rawStepDeathSig
		goto fail
	}
	// Orphans of the attached command come to it, not to the build's
	// PID 1, which did not start them.
	if _, _, err = syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0, 0); err != 0 {
		step = rawStepSubreaper
		goto fail
	}
	for i := 0; i < len(j.place); i++ {
		if _, _, err = syscall.RawSyscall(unix.SYS_DUP3, j.place[i], uintptr(i), 0); err != 0 {
			step = rawStepPlace
			goto fail
		}
	}
	if j.nofile != nil {
		if _, _, err = syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, unix.RLIMIT_NOFILE, uintptr(unsafe.Pointer(j.nofile)), 0, 0, 0); err != 0 {
			step = rawStepNofile
			goto fail
		}
	}
	_, _, err = syscall.RawSyscall6(unix.SYS_EXECVEAT, j.exeFD, uintptr(unsafe.Pointer(j.empty)),
		uintptr(unsafe.Pointer(&j.argv[0])), uintptr(unsafe.Pointer(&j.envv[0])), unix.AT_EMPTY_PATH, 0)
	step = rawStepExec
fail:
	rec := [8]byte{rawFailureMagic, step, 0, 0, byte(err), byte(err >> 8), byte(err >> 16), byte(err >> 24)}
	syscall.RawSyscall(unix.SYS_WRITE, j.errFD, uintptr(unsafe.Pointer(&rec[0])), uintptr(len(rec)))
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
	}
}

// nul is the empty C string.
var nul = [1]byte{}
