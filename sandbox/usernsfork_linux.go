package sandbox

import (
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// userNamespace returns a user namespace whose ids from (inside) are to
// (outside): an idmapped mount shows a file of from as one of to. A
// namespace needs a process to create it, and only until it is open:
// nbs forks one by hand (forkUserNS), one that runs no Go code and execs
// nothing, writes its id maps as Go's os/exec would (setgroups "deny",
// then uid_map and gid_map), opens its namespace and kills it. A start of
// nbs for it (os/exec) would cost a whole runtime start on the way to the
// sandbox's.
func userNamespace(from, to Owner) (*os.File, error) {
	// PR_SET_PDEATHSIG fires when the forking thread ends.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, errno := forkUserNS()
	if errno != 0 {
		return nil, fmt.Errorf("create a user namespace for the idmapped mount: %w", errno)
	}
	pid := int(p)
	defer func() {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
	}()
	if err := writeIDMaps(pid, childIDs{uid: from.UID, gid: from.GID}, to); err != nil {
		return nil, fmt.Errorf("create a user namespace for the idmapped mount: %w", err)
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil {
		return nil, fmt.Errorf("open the idmapped mount's user namespace: %w", err)
	}
	return ns, nil
}

// forkUserNS forks a child in a new user namespace that only waits to be
// killed (or dies with the forking thread). As rawFork, it runs on a
// locked thread, and the child only makes raw system calls on its copy of
// the stack: no allocation, no stack growth.
//
//go:nosplit
//go:norace
func forkUserNS() (pid uintptr, errno syscall.Errno) {
	runtimeBeforeFork()
	pid, _, errno = syscall.RawSyscall6(unix.SYS_CLONE, uintptr(unix.CLONE_NEWUSER|syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 || pid != 0 {
		runtimeAfterFork()
		return pid, errno
	}
	runtimeAfterForkInChild()
	syscall.RawSyscall6(unix.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0, 0)
	for {
		// ppoll of no descriptors and no timeout: pause(2) everywhere.
		syscall.RawSyscall6(unix.SYS_PPOLL, 0, 0, 0, 0, 0, 0)
	}
}
