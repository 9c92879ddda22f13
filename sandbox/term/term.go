// Package term is nbs's one owner of terminals: whether a file is one,
// its width, raw mode, window sizes, opening a pty, relaying a pty to
// the user's terminal, and whether the user wants colours (NoColor). The sandbox, the wrapper and the CLI all use it.
//
// The termios work is golang.org/x/term's; what it lacks (setting a
// window size, opening a pty from a given devpts instance, the relay)
// is here, with x/sys.
package term

import (
	"os"

	"golang.org/x/sys/unix"
	xterm "golang.org/x/term"
)

// NoColor reports whether the user asked for no colours: NO_COLOR is
// set to a value that is not empty (https://no-color.org: "when present
// and not an empty string (regardless of its value)").
func NoColor() bool { return os.Getenv("NO_COLOR") != "" }

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	return control(f, func(fd int) error {
		if !xterm.IsTerminal(fd) {
			return unix.ENOTTY
		}
		return nil
	}) == nil
}

// Width is the number of columns of the terminal f, 0 when unknown.
func Width(f *os.File) int {
	w := 0
	control(f, func(fd int) (err error) {
		w, _, err = xterm.GetSize(fd)
		return err
	})
	return w
}

// MakeRaw puts the terminal f in raw mode (cfmakeraw(3): no "\n" →
// "\r\n", no echo, no signals, every byte as it comes) and returns a
// function that restores its settings.
func MakeRaw(f *os.File) (restore func(), err error) {
	var st *xterm.State
	err = control(f, func(fd int) (err error) {
		st, err = xterm.MakeRaw(fd)
		return err
	})
	if err != nil {
		return nil, err
	}
	return func() { control(f, func(fd int) error { return xterm.Restore(fd, st) }) }, nil
}

// CopySize gives to (a pty) the window size of the terminal from, when
// from has one.
func CopySize(from, to *os.File) {
	control(from, func(ffd int) error {
		return control(to, func(tfd int) error { copySize(ffd, tfd); return nil })
	})
}

func copySize(from, to int) {
	if ws, err := unix.IoctlGetWinsize(from, unix.TIOCGWINSZ); err == nil {
		_ = unix.IoctlSetWinsize(to, unix.TIOCSWINSZ, ws)
	}
}

// control runs fn on f's descriptor without File.Fd, which would put a
// file in the runtime's poller (a pty master) back in blocking mode and
// lose the read deadlines its user relies on.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
