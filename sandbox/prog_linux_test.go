package sandbox

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// forkRun runs p in a forked child without namespaces and returns the
// child's wait status and its failure record, if any.
func forkRun(t *testing.T, p *prog) (unix.WaitStatus, *setupError) {
	t.Helper()
	return forkRunAfter(t, p, func() {})
}

// forkRunAfter is forkRun calling after once the child is forked.
func forkRunAfter(t *testing.T, p *prog, after func()) (unix.WaitStatus, *setupError) {
	t.Helper()
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer errR.Close()
	type result struct {
		ws  unix.WaitStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		syscall.ForkLock.Lock()
		pidfd := int32(-1)
		pid, errno := forkProg(0, p.ops, errW.Fd(), &pidfd)
		if pidfd >= 0 {
			defer unix.Close(int(pidfd))
		}
		syscall.ForkLock.Unlock()
		if errno != 0 {
			done <- result{err: errno}
			return
		}
		after()
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(int(pid), &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
		done <- result{ws: ws}
	}()
	r := <-done
	errW.Close()
	if r.err != nil {
		t.Fatalf("fork: %v", r.err)
	}
	msg, err := io.ReadAll(errR)
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(p)
	if len(msg) == 0 {
		return r.ws, nil
	}
	se := progFailure(p, msg)
	if se == nil {
		t.Fatalf("not a failure record: %q", msg)
	}
	return r.ws, se
}

// TestProgRuns: a compiled mount plan's file steps and a bind target run
// in the forked child as the parent compiled them, and the child exits
// the way the program's last call says.
func TestProgRuns(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &prog{}
	p.begin("apply mount plan")
	pc := newPlanCompiler(p, root)
	for _, op := range []Op{
		{Kind: OpMkdir, Target: "/a/b/c", Mode: 0o711},
		{Kind: OpFile, Target: "/etc/passwd", Mode: 0o644, Data: "root:x:0:0::/:/bin/sh\n"},
		{Kind: OpFile, Target: "/etc/empty", Mode: 0o600},
		{Kind: OpSymlink, Source: "/proc/self/fd", Target: "/dev/fd"},
		{Kind: OpChmod, Target: "/a", Mode: 0o750},
	} {
		if err := pc.op(op); err != nil {
			t.Fatal(err)
		}
	}
	p.call("make a bind target", opBindTarget, p.str(src), p.str(filepath.Join(root, "mnt"))).stat = new(unix.Stat_t)
	p.begin("exit")
	p.call("exit", unix.SYS_EXIT_GROUP, 7)
	ws, se := forkRun(t, p)
	if se != nil {
		t.Fatalf("program failed: %v\n%s", se, p)
	}
	if !ws.Exited() || ws.ExitStatus() != 7 {
		t.Fatalf("child: %v, want exit 7", ws)
	}
	for path, mode := range map[string]os.FileMode{
		"a/b/c": os.ModeDir | 0o711, "a": os.ModeDir | 0o750, "etc/passwd": 0o644, "etc/empty": 0o600, "mnt": os.ModeDir | 0o755,
	} {
		st, err := os.Lstat(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", path, st.Mode(), mode)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); string(b) != "root:x:0:0::/:/bin/sh\n" {
		t.Errorf("etc/passwd: %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(root, "dev/fd")); l != "/proc/self/fd" {
		t.Errorf("dev/fd -> %q", l)
	}
}

// TestProgFailure: a failed call ends the child with 127 and a record
// that names its step, the call and the errno; calls whose errors are
// accepted do not fail.
func TestProgFailure(t *testing.T) {
	dir := t.TempDir()
	p := &prog{}
	p.begin("apply mount plan")
	p.call("mkdir "+dir, unix.SYS_MKDIRAT, atFDCWD, p.str(dir), 0o700).accept(unix.EEXIST)
	p.call("close -1", unix.SYS_CLOSE, ^uintptr(0)).anyErr = true
	p.begin("pivot_root")
	missing := filepath.Join(dir, "missing", "x")
	p.call("chdir "+missing, unix.SYS_CHDIR, p.str(missing))
	p.begin("exit")
	p.call("exit", unix.SYS_EXIT_GROUP, 0)
	ws, se := forkRun(t, p)
	if !ws.Exited() || ws.ExitStatus() != 127 {
		t.Errorf("child: %v, want exit 127", ws)
	}
	if se == nil {
		t.Fatal("no failure record")
	}
	if se.Step != "pivot_root" || !strings.HasPrefix(se.Msg, "chdir "+missing+": ") || !errors.Is(se, unix.ENOENT) {
		t.Errorf("failure: step %q, %q (errno %v), want pivot_root, chdir %s: ENOENT", se.Step, se.Msg, se.Errno, missing)
	}
	// A short write is a failure too, and %v in a call's words takes
	// the errno.
	p = &prog{}
	p.begin("exec")
	p.call("unable to load: %v (a hint)", unix.SYS_GETPID).returns(0)
	_, se = forkRun(t, p)
	if se == nil || se.Msg != "unable to load: "+unix.EIO.Error()+" (a hint)" {
		t.Errorf("failure: %v, want the errno in the words", se)
	}
}

// TestProgStartSync: the child goes on only after the parent's byte on
// the sync pipe, and a parent gone by the time the child's parent-death
// signal is set (every write end of the sync pipe closed) ends the child
// there, instead of leaving it to run on unwatched.
func TestProgStartSync(t *testing.T) {
	for _, gone := range []bool{false, true} {
		devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer devnull.Close()
		null, err := unix.FcntlInt(devnull.Fd(), unix.F_DUPFD_CLOEXEC, progFDBase)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(null)
		var sync, gate [2]int
		for _, fds := range []*[2]int{&sync, &gate} {
			if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fds[0])
		}
		p := &prog{}
		compileStart(p, childIDs{uid: os.Getuid(), gid: os.Getgid()}, false,
			childFDs{stdin: null, stdout: null, stderr: null, sync: sync[0], syncW: sync[1]})
		p.begin("exit")
		p.call("exit", unix.SYS_EXIT_GROUP, 0)
		// A gate before the check, which the test opens when the
		// parent's end is where this case wants it.
		check := -1
		for i, op := range p.ops {
			if strings.Contains(p.whats[op.what], "still there") {
				check = i
			}
		}
		if check < 0 {
			t.Fatalf("no check of the parent in\n%s", p)
		}
		var b [1]byte
		g := p.call("gate", unix.SYS_READ, uintptr(gate[0]), uintptr(unsafe.Pointer(&b[0])), 1)
		g.step = p.ops[check].step
		op := *g
		p.ops = p.ops[:len(p.ops)-1]
		p.ops = append(p.ops[:check], append([]sysOp{op}, p.ops[check:]...)...)
		ws, se := forkRunAfter(t, p, func() {
			unix.Write(sync[1], []byte{0})
			if gone {
				unix.Close(sync[1])
			}
			unix.Write(gate[1], []byte{0})
		})
		if !gone {
			unix.Close(sync[1])
		}
		unix.Close(gate[1])
		runtime.KeepAlive(&b)
		if gone {
			if se == nil || se.Step != "start" || !strings.Contains(se.Msg, "still there") || !ws.Exited() || ws.ExitStatus() != 127 {
				t.Errorf("parent gone: %v (%v), want the start step's check of the parent failed, exit 127", se, ws)
			}
			continue
		}
		if se != nil || !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("parent there: %v (%v), want exit 0", se, ws)
		}
	}
}

// TestProgNUL: a string with a NUL inside is an error of the program,
// not a call on a shorter path.
func TestProgNUL(t *testing.T) {
	sp := &spec{Root: "/r", Argv: []string{"/bin/sh"}, Env: []string{"A=b\x00c"}, Cwd: "/build", Unsandboxed: true, NoNamespaces: true}
	_, err := compileSandbox(sp, childIDs{uid: os.Getuid(), gid: os.Getgid()}, false, childFDs{})
	var se *setupError
	if !errors.As(err, &se) || se.Step != "compile" || !strings.Contains(se.Msg, "NUL") {
		t.Errorf("compile with a NUL in the environment: %v, want a compile step error naming the NUL", err)
	}
}
