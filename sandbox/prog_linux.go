package sandbox

import (
	"encoding/binary"
	"fmt"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A sandbox's set-up is a program of system calls. The parent compiles
// it from the spec (compileSandbox): every path a C string, every
// structure the kernel reads laid out in memory, every choice that can
// be made before the fork made. A child forked by hand (forkProg) runs
// it with raw system calls only and ends in execve of the command: the
// sandbox costs no second Go runtime, whose start (page faults, CPUID
// exits, the cgroup probe for GOMAXPROCS) was the larger part of a
// session's own CPU time. bubblewrap and runc's nsexec do the same in C
// between fork and exec; package syscall's forkAndExecInChild is the
// model for running Go code there.
//
// The program's memory is the parent's: the child has its copy of it
// (fork) and nothing allocated after the fork.

// sysOp is one system call of a program.
type sysOp struct {
	nr   uintptr
	args [6]uintptr
	// ok are errnos that count as success (EEXIST for a directory
	// that may exist); anyErr: every failure does.
	ok     [2]syscall.Errno
	anyErr bool
	// want >= 0: the call must return exactly this (a full write, a
	// poll that finds nothing).
	want int64
	// fd >= 0: the call returns a descriptor, which goes to fd.
	fd int32
	// stat is opBindTarget's buffer.
	stat *unix.Stat_t
	// step and what say what failed (prog.steps, prog.whats).
	step, what uint32
}

// Pseudo system calls the executor runs itself.
const (
	// opBindTarget creates the target of a bind (args[1]) to match its
	// source (args[0]): a directory or an empty file, after a stat of
	// the source into stat.
	opBindTarget = ^uintptr(0) - iota
)

// prog is a compiled set-up.
type prog struct {
	ops   []sysOp
	steps []string
	whats []string
	// keep holds what the ops point into, for as long as the program
	// lives: Go's heap does not move, but it frees.
	keep []any
	step uint32
	// err is the first string the program could not take (a NUL
	// inside would cut it short).
	err error
}

// begin starts the step name: the ops that follow belong to it.
func (p *prog) begin(name string) {
	p.steps = append(p.steps, name)
	p.step = uint32(len(p.steps) - 1)
}

// str is s as a C string the program keeps alive. A NUL in s is an
// error of the program (prog.err), as unix.BytePtrFromString makes it.
func (p *prog) str(s string) uintptr {
	if strings.IndexByte(s, 0) >= 0 && p.err == nil {
		p.err = fmt.Errorf("%q: a NUL byte inside", s)
	}
	b := make([]byte, len(s)+1)
	copy(b, s)
	p.keep = append(p.keep, b)
	return uintptr(unsafe.Pointer(&b[0]))
}

// bytes is b, kept alive (nil: 0).
func (p *prog) bytes(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	b = append([]byte(nil), b...)
	p.keep = append(p.keep, b)
	return uintptr(unsafe.Pointer(&b[0]))
}

// ptr keeps v (a pointer) alive and returns its address.
func (p *prog) ptr(v any, addr unsafe.Pointer) uintptr {
	p.keep = append(p.keep, v)
	return uintptr(addr)
}

// strv is ss as argv or envp: C strings and a nil at the end.
func (p *prog) strv(ss []string) uintptr {
	v := make([]uintptr, 0, len(ss)+1)
	for _, s := range ss {
		v = append(v, p.str(s))
	}
	v = append(v, 0)
	p.keep = append(p.keep, v)
	return uintptr(unsafe.Pointer(&v[0]))
}

// call adds the system call nr with args, described by what (for
// errors: "mkdir /x"), and returns it for its options.
func (p *prog) call(what string, nr uintptr, args ...uintptr) *sysOp {
	op := sysOp{nr: nr, want: -1, fd: -1, step: p.step}
	copy(op.args[:], args)
	p.whats = append(p.whats, what)
	op.what = uint32(len(p.whats) - 1)
	p.ops = append(p.ops, op)
	return &p.ops[len(p.ops)-1]
}

// accept makes errs count as success.
func (op *sysOp) accept(errs ...syscall.Errno) *sysOp {
	copy(op.ok[:], errs)
	return op
}

// returns makes any other result a failure (EIO).
func (op *sysOp) returns(n int64) *sysOp {
	op.want = n
	return op
}

// into puts the descriptor the call returns on fd.
func (op *sysOp) into(fd int) *sysOp {
	op.fd = int32(fd)
	return op
}

// failure is what a program's failed op says.
func (p *prog) failure(i int, errno syscall.Errno) *setupError {
	if i < 0 || i >= len(p.ops) {
		return &setupError{Step: "unknown", Msg: errno.Error()}
	}
	op := p.ops[i]
	msg := p.whats[op.what]
	if strings.Contains(msg, "%v") {
		msg = strings.Replace(msg, "%v", errno.Error(), 1)
	} else {
		msg += ": " + errno.Error()
	}
	return &setupError{Step: p.steps[op.step], Msg: msg, Errno: errno}
}

// runProg runs ops on the calling thread and returns only when one
// fails: its index and errno. Raw system calls on memory prepared
// before, no allocation, no stack growth: it runs in a forked child
// (progChild) as well as in the attach child's Go.
//
//go:nosplit
//go:norace
func runProg(ops []sysOp) (int, syscall.Errno) {
	for i := 0; i < len(ops); i++ {
		op := &ops[i]
		var r uintptr
		var e syscall.Errno
		if op.nr == opBindTarget {
			e = bindTarget(op.args[0], op.args[1], op.stat)
		} else {
			r, _, e = syscall.RawSyscall6(op.nr, op.args[0], op.args[1], op.args[2], op.args[3], op.args[4], op.args[5])
		}
		if e != 0 {
			if op.anyErr || e == op.ok[0] || e == op.ok[1] {
				continue
			}
			return i, e
		}
		if op.want >= 0 && int64(r) != op.want {
			return i, syscall.EIO
		}
		if op.fd >= 0 && r != uintptr(op.fd) {
			if _, _, e = syscall.RawSyscall(unix.SYS_DUP3, r, uintptr(op.fd), 0); e != 0 {
				return i, e
			}
			syscall.RawSyscall(unix.SYS_CLOSE, r, 0, 0)
		}
	}
	return len(ops), 0
}

// bindTarget is opBindTarget.
//
//go:nosplit
//go:norace
func bindTarget(source, target uintptr, st *unix.Stat_t) syscall.Errno {
	if _, _, e := syscall.RawSyscall6(unix.SYS_NEWFSTATAT, atFDCWD, source, uintptr(unsafe.Pointer(st)), 0, 0, 0); e != 0 {
		return e
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		_, _, e := syscall.RawSyscall(unix.SYS_MKDIRAT, atFDCWD, target, 0o755)
		if e == unix.EEXIST {
			e = 0
		}
		return e
	}
	fd, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, atFDCWD, target, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o444, 0, 0)
	if e != 0 {
		return e
	}
	syscall.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	return 0
}

// progFailureMagic starts a failed program's record on the error pipe:
// magic, op index (3 bytes), errno (4 bytes), as rawJoin's records.
const progFailureMagic = 0xfe

// progChild is the forked child: it runs the program and, when an op
// fails, reports it on errFD and exits 127.
//
//go:nosplit
//go:norace
func progChild(ops []sysOp, errFD uintptr) {
	i, e := runProg(ops)
	rec := [8]byte{progFailureMagic, byte(i), byte(i >> 8), byte(i >> 16), byte(e), byte(e >> 8), byte(e >> 16), byte(e >> 24)}
	syscall.RawSyscall(unix.SYS_WRITE, errFD, uintptr(unsafe.Pointer(&rec[0])), uintptr(len(rec)))
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
	}
}

// forkProg forks a child with cloneFlags that runs ops. It runs on a
// locked thread (the child's parent-death signal is that thread's end);
// the caller holds syscall.ForkLock. The child's pidfd goes to *pidfd
// (CLONE_PIDFD, Linux 5.2; an older kernel leaves it as it was).
//
//go:nosplit
//go:norace
func forkProg(cloneFlags uintptr, ops []sysOp, errFD uintptr, pidfd *int32) (pid uintptr, errno syscall.Errno) {
	runtimeBeforeFork()
	// The parent's tid pointer, third on amd64 and arm64 alike, is
	// where CLONE_PIDFD puts the descriptor.
	pid, _, errno = syscall.RawSyscall6(unix.SYS_CLONE, cloneFlags|unix.CLONE_PIDFD|uintptr(syscall.SIGCHLD), 0, uintptr(unsafe.Pointer(pidfd)), 0, 0, 0)
	if errno != 0 || pid != 0 {
		runtimeAfterFork()
		return pid, errno
	}
	runtimeAfterForkInChild()
	progChild(ops, errFD)
	return 0, 0 // not reached
}

// progFailure decodes a failure record of the program p, or nil when msg
// is not one.
func progFailure(p *prog, msg []byte) *setupError {
	if len(msg) != 8 || msg[0] != progFailureMagic {
		return nil
	}
	i := int(msg[1]) | int(msg[2])<<8 | int(msg[3])<<16
	return p.failure(i, syscall.Errno(binary.LittleEndian.Uint32(msg[4:])))
}

// String lists the program, one call a line (test failures show it).
func (p *prog) String() string {
	s := ""
	for _, op := range p.ops {
		s += fmt.Sprintf("%s: %s\n", p.steps[op.step], p.whats[op.what])
	}
	return s
}
