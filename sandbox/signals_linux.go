package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on
// amd64 and arm64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// resetSignals gives the command default signal dispositions and an empty
// signal mask, as Nix's commonChildInit does (restoreSignals). execve
// keeps ignored signals ignored: without this, a SIGINT ignored by
// whoever started nbs (a background job of a shell without job control,
// CI) would make Ctrl-C do nothing inside the sandbox.
func resetSignals() error {
	var dfl kernelSigaction // SIG_DFL
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) || (sig >= 32 && sig <= 33) {
			continue // cannot be changed, or reserved by the C library
		}
		_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
		if errno != 0 && errno != unix.EINVAL {
			return fmt.Errorf("reset signal %d: %w", sig, errno)
		}
	}
	var empty uint64
	if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&empty)), 0, 8, 0, 0); errno != 0 {
		return fmt.Errorf("clear signal mask: %w", errno)
	}
	return nil
}
