package term

import (
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	xterm "golang.org/x/term"
)

// Relay connects the user's terminal (in, out) to the sandbox's pty
// master until the sandbox side closes. It puts the terminal in raw mode,
// gives the pty the terminal's settings and size, and follows window
// resizes. The returned function stops the relay early and restores the
// terminal; it is safe to call more than once.
//
// Raw mode: every key, Ctrl-C and Ctrl-Z included, then reaches the
// sandbox's own pty, whose line discipline turns them into signals for
// the sandbox's foreground job.
func Relay(master, in, out *os.File) (done <-chan struct{}, stop func(), err error) {
	mfd, ifd, ofd := int(master.Fd()), int(in.Fd()), int(out.Fd())
	orig, err := xterm.MakeRaw(ifd)
	if err != nil {
		return nil, nil, err
	}
	restore := func() { _ = xterm.Restore(ifd, orig) }
	// The pty starts with the user's own settings (erase key, ...).
	_ = xterm.Restore(mfd, orig)
	copySize(ifd, mfd)

	wakeR, wakeW, err := os.Pipe()
	if err != nil {
		restore()
		return nil, nil, err
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer wakeR.Close()
		relayLoop(mfd, ifd, ofd, int(wakeR.Fd()), winch)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		// The sandbox has ended: the relay ends by itself once the
		// master has handed over everything the sandbox wrote (then
		// read returns EIO). Cutting it short here would lose output
		// still in the pty's buffers; the deadline only guards against
		// a slave descriptor kept open somewhere.
		select {
		case <-finished:
		case <-time.After(2 * time.Second):
		}
		wakeW.Close()
		<-finished
		signal.Stop(winch)
		restore()
	}
	return finished, stop, nil
}

// relayLoop moves bytes both ways with poll(2), so that no goroutine is
// left blocked in a read of the user's terminal when the sandbox ends
// (it would swallow the next key the user types in their shell).
func relayLoop(mfd, ifd, ofd, wake int, winch <-chan os.Signal) {
	buf := make([]byte, 32*1024)
	inOpen := true
	for {
		select {
		case <-winch:
			copySize(ifd, mfd)
		default:
		}
		fds := []unix.PollFd{{Fd: int32(mfd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
		if inOpen {
			fds = append(fds, unix.PollFd{Fd: int32(ifd), Events: unix.POLLIN})
		}
		// A timeout so that SIGWINCH is seen even when nothing moves.
		if _, err := unix.Poll(fds, 200); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if fds[0].Revents&unix.POLLNVAL != 0 {
			return
		}
		if fds[1].Revents != 0 {
			// Asked to stop: flush what the sandbox has written.
			drain(mfd, ofd, buf)
			return
		}
		if fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0 {
			n, err := unix.Read(mfd, buf)
			if n > 0 {
				writeAll(ofd, buf[:n])
			}
			// EIO: every slave descriptor is closed, the sandbox is gone.
			if n <= 0 && err != unix.EINTR && err != unix.EAGAIN {
				return
			}
		}
		if inOpen && fds[2].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0 {
			n, err := unix.Read(ifd, buf)
			if n > 0 {
				writeAll(mfd, buf[:n])
			} else if err != unix.EINTR && err != unix.EAGAIN {
				inOpen = false
			}
		}
	}
}

func drain(mfd, ofd int, buf []byte) {
	for {
		fds := []unix.PollFd{{Fd: int32(mfd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(fds, 0); n <= 0 || fds[0].Revents&unix.POLLIN == 0 {
			return
		}
		n, _ := unix.Read(mfd, buf)
		if n <= 0 {
			return
		}
		writeAll(ofd, buf[:n])
	}
}

func writeAll(fd int, b []byte) {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			// A non-blocking terminal that is full: wait until it
			// drains instead of spinning.
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, 1000)
			continue
		}
		if err != nil {
			return
		}
		b = b[n:]
	}
}
