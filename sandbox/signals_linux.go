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

// compileResetSignals gives the command default signal dispositions and
// an empty signal mask, as Nix's commonChildInit does (restoreSignals).
// execve keeps ignored signals ignored: without this, a SIGINT ignored by
// whoever started nbs (a background job of a shell without job control,
// CI) would make Ctrl-C do nothing inside the sandbox.
func compileResetSignals(p *prog) {
	dfl := &kernelSigaction{} // SIG_DFL
	act := p.ptr(dfl, unsafe.Pointer(dfl))
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) || (sig >= 32 && sig <= 33) {
			continue // cannot be changed, or reserved by the C library
		}
		p.call(fmt.Sprintf("reset signal %d", sig), unix.SYS_RT_SIGACTION, uintptr(sig), act, 0, 8).accept(unix.EINVAL)
	}
	empty := new(uint64)
	p.call("clear signal mask", unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, p.ptr(empty, unsafe.Pointer(empty)), 0, 8)
}
