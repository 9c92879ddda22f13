//go:build linux

// Command restrict runs a program under the restrictions of a default
// Docker container, for the tests of nbs where namespaces are forbidden
// (issue 17): Docker's 14 default capabilities and a seccomp filter that
// refuses what Docker's default profile refuses a container without
// CAP_SYS_ADMIN.
//
//	restrict PROG [ARG…]
//
// The filter, like moby's profiles/seccomp/default.json:
//   - unshare, setns, mount, umount2, pivot_root, the new mount API
//     (open_tree, move_mount, fsopen, fsconfig, fsmount, fspick,
//     mount_setattr), keyctl, add_key, request_key: EPERM;
//   - clone with any namespace flag (CLONE_NEWNS, NEWUTS, NEWIPC,
//     NEWUSER, NEWPID, NEWNET, NEWCGROUP: the mask 0x7E020000): EPERM;
//   - clone3: ENOSYS (so that C libraries fall back to clone);
//   - personality other than 0, PER_LINUX32 (8), UNAME26 (0x20000),
//     their union and the query 0xffffffff: EPERM;
//   - everything else allowed.
//
// Run as root it drops the bounding, inheritable, permitted and effective
// sets to Docker's defaults before it execs PROG, which then runs with
// exactly those, as root in a container does; run as another user it
// sets no_new_privs (which the filter then needs) and execs PROG with no
// capabilities. The mount and PID namespaces, /tmp, /nix and the
// nix.conf of a "container" are the caller's to set up before: the filter
// forbids that afterwards.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dockerCaps is Docker's default capability set (moby's
// oci/caps/defaults.go).
var dockerCaps = []int{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FSETID, unix.CAP_FOWNER,
	unix.CAP_MKNOD, unix.CAP_NET_RAW, unix.CAP_SETGID, unix.CAP_SETUID,
	unix.CAP_SETFCAP, unix.CAP_SETPCAP, unix.CAP_NET_BIND_SERVICE,
	unix.CAP_SYS_CHROOT, unix.CAP_KILL, unix.CAP_AUDIT_WRITE,
}

// cloneNSFlags is the namespace mask of Docker's clone rule.
const cloneNSFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: restrict PROG [ARG…]")
		os.Exit(2)
	}
	prog, err := exec.LookPath(os.Args[1])
	if err != nil {
		fail(err)
	}
	// Capabilities, no_new_privs and the filter are per thread: all of
	// it on this one, which ends in execve.
	runtime.LockOSThread()
	root := os.Geteuid() == 0
	if !root {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fail(fmt.Errorf("prctl PR_SET_NO_NEW_PRIVS: %w", err))
		}
	}
	// The filter first, while root still has CAP_SYS_ADMIN to load it
	// without no_new_privs (Docker sets none by default).
	if err := installFilter(); err != nil {
		fail(err)
	}
	if root {
		if err := dropCaps(); err != nil {
			fail(err)
		}
	}
	fail(unix.Exec(prog, os.Args[1:], os.Environ()))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "restrict:", err)
	os.Exit(127)
}

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
func jeq(k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: jt, Jf: jf, K: k}
}

const (
	ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	ret   = unix.BPF_RET | unix.BPF_K
	// offsets in struct seccomp_data
	offNr   = 0
	offArch = 4
	offArg0 = 16 // the low word on little-endian
)

func filter() []unix.SockFilter {
	arch := map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}[runtime.GOARCH]
	allow := stmt(ret, unix.SECCOMP_RET_ALLOW)
	eperm := stmt(ret, unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM))
	p := []unix.SockFilter{
		stmt(ldAbs, offArch),
		jeq(arch, 1, 0),
		allow, // another architecture: not this helper's concern
		stmt(ldAbs, offNr),
	}
	for _, nr := range []uint32{unix.SYS_UNSHARE, unix.SYS_SETNS, unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT,
		unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
		unix.SYS_MOUNT_SETATTR, unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY} {
		p = append(p, jeq(nr, 0, 1), eperm)
	}
	p = append(p, jeq(unix.SYS_CLONE3, 0, 1), stmt(ret, unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS)))
	// clone: flags are the first argument on amd64 and arm64.
	p = append(p,
		jeq(unix.SYS_CLONE, 0, 4),
		stmt(ldAbs, offArg0),
		unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, Jt: 0, Jf: 1, K: cloneNSFlags},
		eperm,
		allow)
	personas := []uint32{0, 8, 0x20000, 0x20008, 0xffffffff}
	p = append(p, jeq(unix.SYS_PERSONALITY, 0, uint8(len(personas)+3)), stmt(ldAbs, offArg0))
	for i, v := range personas {
		p = append(p, jeq(v, uint8(len(personas)-i), 0))
	}
	p = append(p, eperm, allow)
	return append(p, allow)
}

func installFilter() error {
	prog := filter()
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0); err != nil {
		return fmt.Errorf("load seccomp filter: %w", err)
	}
	return nil
}

// dropCaps leaves Docker's set in the bounding, inheritable, permitted
// and effective sets, and no ambient capabilities.
func dropCaps() error {
	keep := map[int]bool{}
	for _, c := range dockerCaps {
		keep[c] = true
	}
	last := unix.CAP_LAST_CAP
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		fmt.Sscan(strings.TrimSpace(string(b)), &last)
	}
	for c := 0; c <= last; c++ {
		if !keep[c] {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
			}
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	var data [2]unix.CapUserData
	for _, c := range dockerCaps {
		data[c/32].Effective |= 1 << (c % 32)
	}
	for i := range data {
		data[i].Permitted, data[i].Inheritable = data[i].Effective, data[i].Effective
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
