package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// probeArg0 is argv[0] of the re-executed nbs that only checks that the
// sandbox's namespaces can be made (chooseMode, refusedStart): started
// with the sandbox's own clone flags and id maps, it makes its mounts
// private (the sandbox's first mount, which an AppArmor policy may
// refuse in a namespace that clone allowed) and exits 0. On failure it
// prints "ERRNO MESSAGE" and exits 1.
const probeArg0 = "nbs-sandbox-probe"

// probeMain is the probe's side; argv[1] "mount" asks for the mount.
func probeMain() {
	if len(os.Args) > 1 && os.Args[1] == "mount" {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			fmt.Printf("%d make mounts private in the new namespaces: %v\n", int(err.(unix.Errno)), err)
			os.Exit(1)
		}
	}
	os.Exit(0)
}

// probeError is the probe's failed mount, as the errno it printed.
type probeError struct {
	msg   string
	errno syscall.Errno
}

func (e *probeError) Error() string { return e.msg }
func (e *probeError) Unwrap() error { return e.errno }

// probe starts the probe with attr (nil: no namespaces) and waits for it.
func probe(attr *syscall.SysProcAttr) error {
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{probeArg0}, Env: []string{}, SysProcAttr: attr}
	if attr != nil && attr.Cloneflags&unix.CLONE_NEWNS != 0 {
		cmd.Args = append(cmd.Args, "mount")
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	// Pdeathsig fires when the thread that forked exits.
	runtime.LockOSThread()
	err := cmd.Run()
	runtime.UnlockOSThread()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		n, msg, ok := strings.Cut(strings.TrimSpace(out.String()), " ")
		if errno, cerr := strconv.Atoi(n); ok && cerr == nil {
			return &probeError{msg: msg, errno: syscall.Errno(errno)}
		}
		return fmt.Errorf("namespace probe: %v: %s", err, strings.TrimSpace(out.String()))
	}
	return err
}

// namespacesRefused starts the probe in the namespaces attr asks for. It
// returns nil, nil when they can be made, the restriction when the
// kernel (or a seccomp filter, or an LSM) refuses them, and an error for
// any other failure. plain is the same start without namespaces: when
// that fails too, the refusal was not about namespaces (nbs cannot run
// itself as the sandbox user, say).
func namespacesRefused(attr, plain *syscall.SysProcAttr) (*nsRestriction, error) {
	err := probe(attr)
	if err == nil {
		return nil, nil
	}
	if !isNSErrno(err) {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	if perr := probe(plain); perr != nil {
		return nil, fmt.Errorf("start sandbox: %w", perr)
	}
	r := classifyNS(err, readNSFacts("/proc"))
	r.err = err
	return &r, nil
}
