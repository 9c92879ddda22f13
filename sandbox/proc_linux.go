package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// addrNoRandomize is ADDR_NO_RANDOMIZE: Nix always turns ASLR off for the
// builder (src/libstore/linux/personality.cc).
const addrNoRandomize = 0x0040000

// execCommand sets the per-process state a Nix builder has and execs
// spec.Argv. It runs on the locked thread of ChildMain: capabilities,
// no_new_privs and the seccomp filter belong to the calling thread, and
// execve keeps only that thread.
func execCommand(s *spec) error {
	if s.RC != "" {
		if err := passRC(s.RC); err != nil {
			return err
		}
	}
	// Nix inherits umask 022 from initNix (explicit from 2.35).
	unix.Umask(0o022)
	// RLIMIT_CORE = 0: Nix sets {0, RLIM_INFINITY}; an unprivileged
	// process cannot raise the hard limit, so only the soft one changes.
	var core unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &core); err != nil {
		return fmt.Errorf("getrlimit RLIMIT_CORE: %w", err)
	}
	core.Cur = 0
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &core); err != nil {
		return fmt.Errorf("setrlimit RLIMIT_CORE: %w", err)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, addrNoRandomize, 0, 0); errno != 0 && !s.NoNamespaces {
		// Without namespaces nbs is in a container whose seccomp
		// profile may refuse it (Docker's allows only a few
		// personalities); Nix ignores the failure there too.
		return fmt.Errorf("personality ADDR_NO_RANDOMIZE: %w", errno)
	}
	if err := unix.Chdir(s.Cwd); err != nil {
		return fmt.Errorf("chdir %s: %w", s.Cwd, err)
	}
	// Only 0, 1 and 2 (and the rc file) survive, as in Nix's closeExtraFDs.
	first := uint(3)
	if s.RC != "" {
		first = rcFD + 1
	}
	if err := unix.CloseRange(first, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	if s.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("prctl PR_SET_NO_NEW_PRIVS: %w", err)
		}
	}
	// The filter goes in while we still hold CAP_SYS_ADMIN in our user
	// namespace, so it loads even without no_new_privs
	// (allow-new-privileges = true).
	if s.Seccomp != nil {
		if err := loadSeccomp(*s.Seccomp); err != nil {
			return err
		}
	}
	if err := dropCapabilities(); err != nil {
		return err
	}
	if err := resetSignals(); err != nil {
		return err
	}
	// A session keyring of its own: the caller's (the user's keys,
	// tokens) must not be reachable from the build.
	// A filter that refuses keyctl (Docker's default profile) refuses it
	// to the command as well: EPERM then leaves nothing reachable.
	if _, _, errno := unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); errno != 0 && errno != unix.ENOSYS && !(errno == unix.EPERM && s.NoNamespaces) {
		return fmt.Errorf("keyctl join session keyring: %w", errno)
	}
	exe := s.Argv[0]
	if s.Exe != "" {
		exe = s.Exe
	}
	err := unix.Exec(exe, s.Argv, s.Env)
	return fmt.Errorf("execve %s: %w", exe, err)
}

// passRC puts the interactive shell's start-up file on fd 3 as a memfd,
// so it exists nowhere in the sandbox's file system.
func passRC(rc string) error {
	fd, err := unix.MemfdCreate("nbs-rc", 0)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	if _, err := unix.Write(fd, []byte(rc)); err != nil {
		return fmt.Errorf("write rc: %w", err)
	}
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return fmt.Errorf("seek rc: %w", err)
	}
	if fd != rcFD {
		if err := unix.Dup3(fd, rcFD, 0); err != nil {
			return fmt.Errorf("dup rc to fd %d: %w", rcFD, err)
		}
		unix.Close(fd)
	}
	return nil
}

// dropCapabilities leaves the command with no capabilities at all, like a
// Nix builder after setuid(1000): effective, permitted, inheritable and
// ambient sets empty; the bounding set stays full, as in Nix.
func dropCapabilities() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
