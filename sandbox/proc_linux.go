package sandbox

import (
	"fmt"
	"unsafe"

	"github.com/nix-build-shell/nbs/sandbox/nofile"
	"golang.org/x/sys/unix"
)

// addrNoRandomize is ADDR_NO_RANDOMIZE: Nix always turns ASLR off for the
// builder (src/libstore/linux/personality.cc).
const addrNoRandomize = 0x0040000

// compileExec adds the per-process state a Nix builder has and the execve
// of spec.Argv. Capabilities, no_new_privs and the seccomp filter belong
// to the calling thread, and execve keeps only that thread: the program
// runs on one (the forked child's only one, the attach child's locked
// one).
func compileExec(p *prog, s *spec) error {
	p.begin("exec")
	if s.RC != "" {
		// The interactive shell's start-up file, on fd 3 as a memfd: it
		// exists nowhere in the sandbox's file system.
		p.call("memfd_create", unix.SYS_MEMFD_CREATE, p.str("nbs-rc"), 0).into(rcFD)
		p.call("write rc", unix.SYS_WRITE, rcFD, p.bytes([]byte(s.RC)), uintptr(len(s.RC))).returns(int64(len(s.RC)))
		p.call("seek rc", unix.SYS_LSEEK, rcFD, 0, 0).returns(0)
	}
	// Nix inherits umask 022 from initNix (explicit from 2.35).
	p.call("umask", unix.SYS_UMASK, 0o022).anyErr = true
	// RLIMIT_CORE = 0: Nix sets {0, RLIM_INFINITY}; an unprivileged
	// process cannot raise the hard limit, so only the soft one changes.
	var core unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &core); err != nil {
		return &setupError{Step: "exec", Msg: fmt.Sprintf("getrlimit RLIMIT_CORE: %v", err)}
	}
	core.Cur = 0
	p.call("setrlimit RLIMIT_CORE", unix.SYS_PRLIMIT64, 0, unix.RLIMIT_CORE, p.ptr(&core, unsafe.Pointer(&core)), 0)
	if lim := nofileToRestore(); lim != nil {
		p.call("setrlimit RLIMIT_NOFILE", unix.SYS_PRLIMIT64, 0, unix.RLIMIT_NOFILE, p.ptr(lim, unsafe.Pointer(lim)), 0)
	}
	// Without namespaces nbs is in a container whose seccomp profile may
	// refuse it (Docker's allows only a few personalities); Nix ignores
	// the failure there too.
	p.call("personality ADDR_NO_RANDOMIZE", unix.SYS_PERSONALITY, addrNoRandomize).anyErr = s.NoNamespaces
	p.call("chdir "+s.Cwd, unix.SYS_CHDIR, p.str(s.Cwd))
	// Only 0, 1 and 2 (and the rc file) survive, as in Nix's closeExtraFDs.
	first := uintptr(3)
	if s.RC != "" {
		first = rcFD + 1
	}
	p.call("close_range", unix.SYS_CLOSE_RANGE, first, ^uintptr(0), unix.CLOSE_RANGE_CLOEXEC)
	if s.NoNewPrivs {
		p.call("prctl PR_SET_NO_NEW_PRIVS", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	}
	// The filter goes in while we still hold CAP_SYS_ADMIN in our user
	// namespace, so it loads even without no_new_privs
	// (allow-new-privileges = true).
	if s.Seccomp != nil {
		filter, err := seccompFilter(*s.Seccomp)
		if err != nil {
			return &setupError{Step: "exec", Msg: err.Error()}
		}
		fprog := &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		p.keep = append(p.keep, filter)
		// Nix's own wording, so users can search for it.
		p.call("unable to load seccomp BPF program: %v (this system cannot load it, e.g. under CPU emulation: set filter-syscalls = false in nix.conf, as Nix itself needs there)",
			unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, p.ptr(fprog, unsafe.Pointer(fprog)), 0, 0)
	}
	compileDropCapabilities(p)
	compileResetSignals(p)
	// A session keyring of its own: the caller's (the user's keys,
	// tokens) must not be reachable from the build. A filter that
	// refuses keyctl (Docker's default profile) refuses it to the
	// command as well: EPERM then leaves nothing reachable.
	kc := p.call("keyctl join session keyring", unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0).accept(unix.ENOSYS)
	if s.NoNamespaces {
		kc.accept(unix.ENOSYS, unix.EPERM)
	}
	exe := s.Argv[0]
	if s.Exe != "" {
		exe = s.Exe
	}
	p.call("execve "+exe, unix.SYS_EXECVE, p.str(exe), p.strv(s.Argv), p.strv(s.Env))
	// The program's last step: any string it could not take fails it.
	if p.err != nil {
		return &setupError{Step: "compile", Msg: p.err.Error()}
	}
	return nil
}

// compileDropCapabilities leaves the command with no capabilities at all,
// like a Nix builder after setuid(1000): effective, permitted,
// inheritable and ambient sets empty; the bounding set stays full, as in
// Nix.
func compileDropCapabilities(p *prog) {
	p.call("clear ambient capabilities", unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := &[2]unix.CapUserData{}
	p.call("capset", unix.SYS_CAPSET, p.ptr(hdr, unsafe.Pointer(hdr)), p.ptr(data, unsafe.Pointer(&data[0])))
}

// nofileToRestore is the RLIMIT_NOFILE nbs was started with, when package
// syscall raised the soft limit for nbs (to the hard one less one, still
// in place) and would restore it in a process it starts: the sandbox's
// processes are forked by hand, so they restore it themselves. nil when
// there is nothing to restore.
func nofileToRestore() *unix.Rlimit {
	start, ok := nofile.Start()
	if !ok || start.Max == 0 || start.Cur >= start.Max-1 {
		return nil
	}
	var now unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &now) != nil || now.Cur != start.Max-1 || now.Max != start.Max {
		return nil
	}
	return &unix.Rlimit{Cur: start.Cur, Max: start.Max}
}
