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

	"golang.org/x/sys/unix"
)

// forkRun runs p in a forked child without namespaces and returns the
// child's wait status and its failure record, if any.
func forkRun(t *testing.T, p *prog) (unix.WaitStatus, *setupError) {
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
		pid, errno := forkProg(0, p.ops, errW.Fd())
		syscall.ForkLock.Unlock()
		if errno != 0 {
			done <- result{err: errno}
			return
		}
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
	p.call("personality", unix.SYS_PERSONALITY, ^uintptr(0)-1).anyErr = true
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
