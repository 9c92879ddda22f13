//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// term is the outer terminal a user would have: a pty whose slave is
// nbs's stdin, stdout and stderr.
type term struct {
	master, slave *os.File
	mu            sync.Mutex
	out           bytes.Buffer
}

func newTerm(t *testing.T) *term {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("SKIPPED: no pty: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	tm := &term{master: m, slave: s}
	tm.resize(t, 30, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			tm.mu.Lock()
			tm.out.Write(buf[:n])
			tm.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { m.Close(); s.Close() })
	return tm
}

// start runs cmd as the session leader of a new session whose
// controlling terminal is tm, and sends its exit code on the channel
// when it ends.
func (tm *term) start(t *testing.T, cmd *exec.Cmd) <-chan int {
	t.Helper()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tm.slave, tm.slave, tm.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		cmd.Wait()
		done <- cmd.ProcessState.ExitCode()
	}()
	return done
}

func (tm *term) resize(t *testing.T, rows, cols uint16) {
	if err := unix.IoctlSetWinsize(int(tm.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}

func (tm *term) send(s string) { tm.master.Write([]byte(s)) }

// expect waits until the screen output since the last expect contains
// want.
func (tm *term) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for time.Now().Before(deadline) {
		tm.mu.Lock()
		s := tm.out.String()
		if i := strings.Index(s, want); i >= 0 {
			tm.out.Next(i + len(want))
			tm.mu.Unlock()
			return
		}
		tm.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	t.Fatalf("terminal never showed %q; it shows:\n%s", want, tm.out.String())
}

// expectSize asks the shell for its terminal's size (stty size) until it
// is want: a resize reaches the sandbox's terminal a moment after the
// outer one, by a signal nbs (or ssh) handles when it gets to it.
func (tm *term) expectSize(t *testing.T, want string) {
	t.Helper()
	if !eventually(func() bool {
		tm.send("stty size\r")
		time.Sleep(200 * time.Millisecond)
		tm.mu.Lock()
		defer tm.mu.Unlock()
		return strings.Contains(tm.out.String(), want)
	}) {
		t.Fatalf("the sandbox's terminal never got the size %q; the terminal shows:\n%s", want, tm.out.String())
	}
	tm.expect(t, want)
}

// waitRunning waits until a descendant of process top runs with exactly
// this command line (a command the test typed into the sandbox's shell;
// other tests on the machine may run the same, elsewhere).
func waitRunning(t *testing.T, top int, cmdline string) {
	t.Helper()
	if !eventually(func() bool { return runsBelow(top, cmdline) }) {
		t.Fatalf("%q never ran", cmdline)
	}
}

// TestShellInteractive drives the interactive shell through a real
// terminal: prompt, tty, Ctrl-C, Ctrl-Z and job control, window resize,
// the exit status, and the user's terminal restored afterwards.
func TestShellInteractive(t *testing.T) {
	requireUserNS(t)
	dir := buildFailure(t, "fail")
	tm := newTerm(t)
	before, err := unix.IoctlGetTermios(int(tm.slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "nbs-e2e-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(tmp, 0o1777)
	defer os.RemoveAll(tmp)
	cmd := exec.Command(nbsBin, "shell", dir)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "TERM=xterm", "NO_COLOR=1"}
	done := tm.start(t, cmd)

	// The shell starts where the failing phase did (env-vars' PWD).
	tm.expect(t, "[nbs nbs-e2e-fail] /build/src $ ")
	tm.send("tty; echo $((6*7)); id -u\r")
	tm.expect(t, "/dev/pts/0")
	tm.expect(t, "42")
	tm.expect(t, "1000")

	tm.send("sleep 100\r")
	// Ctrl-C once sleep runs (before, the shell's line editor gets it).
	waitRunning(t, cmd.Process.Pid, "sleep 100")
	tm.send("\x03")
	tm.send("echo after-int $?\r")
	tm.expect(t, "after-int 130")

	tm.send("sleep 200\r")
	waitRunning(t, cmd.Process.Pid, "sleep 200")
	tm.send("\x1a")
	tm.expect(t, "Stopped")
	tm.send("jobs; kill %1; fg 2>/dev/null; echo jobs-done\r")
	tm.expect(t, "jobs-done")

	tm.resize(t, 41, 123)
	// nbs is the outer terminal's foreground process: SIGWINCH reaches
	// it, and it resizes the sandbox's pty.
	syscall.Kill(cmd.Process.Pid, syscall.SIGWINCH)
	tm.expectSize(t, "41 123")

	tm.send("exit 3\r")
	select {
	case code := <-done:
		if code != 3 {
			t.Errorf("nbs exited %d, want the shell's 3", code)
		}
	case <-time.After(hang):
		cmd.Process.Kill()
		t.Fatal("nbs did not exit after the shell did")
	}
	after, err := unix.IoctlGetTermios(int(tm.slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("terminal not restored: lflag %#x→%#x iflag %#x→%#x oflag %#x→%#x",
			before.Lflag, after.Lflag, before.Iflag, after.Iflag, before.Oflag, after.Oflag)
	}
	if e := tmpEntries(tmp); len(e) > 0 {
		t.Errorf("TMPDIR not cleaned: %v", e)
	}
}
