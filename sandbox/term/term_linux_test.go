package term

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pty opens a pty pair from the host's devpts, or skips when there is
// none (a container without /dev/pts).
func pty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, s, err := OpenPTY("/dev/ptmx")
	if err != nil {
		t.Skipf("SKIPPED: no pty here: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

func lflag(t *testing.T, f *os.File) uint32 {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag
}

// readUntil reads f until want has arrived, with a limit that only
// catches a hang.
func readUntil(t *testing.T, f *os.File, want string) {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer f.SetReadDeadline(time.Time{})
	var got bytes.Buffer
	buf := make([]byte, 1024)
	for !strings.Contains(got.String(), want) {
		n, err := f.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("read %s: %v; got %q, want %q", f.Name(), err, got.String(), want)
		}
	}
}

func TestOpenPTY(t *testing.T) {
	m, s := pty(t)
	if !strings.HasPrefix(s.Name(), "/dev/pts/") {
		t.Errorf("slave %q, want /dev/pts/N", s.Name())
	}
	if !IsTerminal(m) || !IsTerminal(s) {
		t.Error("IsTerminal is false for a pty")
	}
	// The slave is blocking (a shell's stdin must be); the master is in
	// the poller, so a read deadline works on it.
	if fl, err := unix.FcntlInt(s.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("slave flags %#x, %v: want blocking", fl, err)
	}
	if _, err := s.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, m, "hello")
}

func TestOpenPTYMissing(t *testing.T) {
	_, _, err := OpenPTY("/nonexistent/ptmx")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "/nonexistent/ptmx") {
		t.Errorf("OpenPTY of a missing ptmx: %v, want a not-exist error naming it", err)
	}
}

func TestNotTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(r) || Width(r) != 0 {
		t.Error("a pipe counts as a terminal")
	}
	if _, err := MakeRaw(r); err == nil {
		t.Error("MakeRaw of a pipe succeeded")
	}
	CopySize(r, w) // nothing to copy, no panic
}

func TestSizeAndRaw(t *testing.T) {
	m, s := pty(t)
	m2, _ := pty(t)
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 101}); err != nil {
		t.Fatal(err)
	}
	if w := Width(s); w != 101 {
		t.Errorf("Width = %d, want 101", w)
	}
	CopySize(m, m2)
	if w := Width(m2); w != 101 {
		t.Errorf("after CopySize, Width = %d, want 101", w)
	}

	before := lflag(t, s)
	if before&unix.ECHO == 0 {
		t.Fatal("a new pty does not echo")
	}
	restore, err := MakeRaw(s)
	if err != nil {
		t.Fatal(err)
	}
	if l := lflag(t, s); l&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 {
		t.Errorf("raw mode keeps lflag %#x", l)
	}
	restore()
	if l := lflag(t, s); l != before {
		t.Errorf("restored lflag %#x, want %#x", l, before)
	}
}

// TestRelay: the user's terminal (a pty here) and the sandbox's pty are
// connected both ways, the user's terminal is raw during the relay and
// restored after, and the relay ends when the sandbox side closes.
func TestRelay(t *testing.T) {
	user, userSlave := pty(t) // the user's terminal: nbs holds the slave
	box, boxSlave := pty(t)   // the sandbox's pty: nbs holds the master
	unix.IoctlSetWinsize(int(userSlave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 77})
	before := lflag(t, userSlave)

	done, stop, err := Relay(box, userSlave, userSlave)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if l := lflag(t, userSlave); l&(unix.ECHO|unix.ICANON) != 0 {
		t.Errorf("user's terminal not raw during the relay: lflag %#x", l)
	}
	if l := lflag(t, boxSlave); l != before {
		t.Errorf("sandbox pty lflag %#x, want the user's own settings %#x", l, before)
	}
	if w := Width(boxSlave); w != 77 {
		t.Errorf("sandbox pty width %d, want the user's 77", w)
	}

	// Keys go in: typed on the user's terminal, read in the sandbox.
	if _, err := user.Write([]byte("typed\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, boxSlave, "typed")
	// Output comes out: written in the sandbox, shown to the user.
	if _, err := boxSlave.Write([]byte("shown\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, user, "shown")

	// The sandbox ends: its last slave closes, the relay finishes by
	// itself, and stop restores the user's terminal.
	boxSlave.Close()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not end after the sandbox's pty closed")
	}
	stop()
	stop() // a second call is harmless
	if l := lflag(t, userSlave); l != before {
		t.Errorf("user's terminal lflag %#x after the relay, want %#x", l, before)
	}
}
