package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

func installSeccomp(prog []unix.SockFilter) error {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0); err != nil {
		// Nix's own wording, so users can search for it.
		return fmt.Errorf("unable to load seccomp BPF program: %w (this system cannot load it, e.g. under CPU emulation: set filter-syscalls = false in nix.conf, as Nix itself needs there)", err)
	}
	return nil
}
