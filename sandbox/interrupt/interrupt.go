// Package interrupt is nbs's one owner of interruption: catching SIGINT,
// SIGTERM and SIGHUP while a session runs, the error that says a session
// was ended by one, and the shell's 128+N exit status of a process that
// a signal killed.
//
// It sits under sandbox beside term because all of nbs uses it — the
// sandbox session, wrapper.Run, wrapper/remote and the CLI — and it
// imports nothing of nbs: every arrow points down to it.
package interrupt

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
)

// Signals are the ones that end a session: Ctrl-C, kill(1)'s default and
// a closed terminal.
var Signals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// Error says a session was ended because nbs got Signal.
type Error struct{ Signal syscall.Signal }

func (e *Error) Error() string { return "interrupted by " + e.Signal.String() }

// ExitCode is the shell's exit status for the signal: 128+N.
func (e *Error) ExitCode() int { return ExitCode(e.Signal) }

// ExitCode is the exit status a shell gives a process killed by sig:
// 128+N. An os.Signal on Unix is a syscall.Signal.
func ExitCode(sig os.Signal) int {
	s, _ := sig.(syscall.Signal)
	return 128 + int(s)
}

// Status is a finished process's exit status in the shell's convention:
// its exit code, or 128+N when signal N killed it; -1 when ps is nil (it
// never ran).
func Status(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return WaitStatus(ws)
	}
	return ps.ExitCode()
}

// WaitStatus is Status for a wait status: the exit code, or 128+N when
// signal N killed the process.
func WaitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return ExitCode(ws.Signal())
	}
	return ws.ExitStatus()
}

// A Catcher catches Signals from Catch until Stop: they no longer end
// nbs, they end the session. It remembers the first, ends the context
// Catch returned, and passes each signal on to the child given to Start.
type Catcher struct {
	c       chan os.Signal
	cancel  context.CancelFunc
	first   chan struct{} // closed at the first signal
	stopped chan struct{}
	once    sync.Once

	mu    sync.Mutex
	sig   syscall.Signal
	child *os.Process
	as    syscall.Signal
}

// Catch starts catching Signals. The context it returns ends at the
// first one (or with ctx, or at Stop). Call it before anything a signal
// must not leave behind exists: from then on a signal cannot kill nbs.
func Catch(ctx context.Context) (context.Context, *Catcher) {
	ctx, cancel := context.WithCancel(ctx)
	c := &Catcher{
		c:       make(chan os.Signal, 8),
		cancel:  cancel,
		first:   make(chan struct{}),
		stopped: make(chan struct{}),
	}
	signal.Notify(c.c, Signals...)
	go c.loop()
	return ctx, c
}

func (c *Catcher) loop() {
	for {
		select {
		case s := <-c.c:
			sig, _ := s.(syscall.Signal)
			c.mu.Lock()
			if c.sig == 0 {
				c.sig = sig
				close(c.first)
			}
			if c.child != nil {
				fwd := sig
				if c.as != 0 {
					fwd = c.as
				}
				_ = c.child.Signal(fwd) // an ended child has nothing to stop
			}
			c.mu.Unlock()
			c.cancel()
		case <-c.stopped:
			return
		}
	}
}

// Start starts cmd unless a signal has come already (then it returns the
// *Error and cmd never runs), and from then on passes each signal to it:
// as the signal that came, or as as when that is not 0 (ssh ends cleanly,
// restoring the terminal, on SIGTERM). An error from cmd.Start is
// returned as it is.
func (c *Catcher) Start(cmd *exec.Cmd, as syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sig != 0 {
		return &Error{Signal: c.sig}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	c.child, c.as = cmd.Process, as
	return nil
}

// Interrupted is closed when the first signal has come.
func (c *Catcher) Interrupted() <-chan struct{} { return c.first }

// Signal is the first signal that came, 0 while none has.
func (c *Catcher) Signal() syscall.Signal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sig
}

// Err is the first signal as an *Error, nil while none has come.
func (c *Catcher) Err() error {
	if sig := c.Signal(); sig != 0 {
		return &Error{Signal: sig}
	}
	return nil
}

// Stop ends the catching (the signals' dispositions are nbs's again) and
// the context. It may be called more than once.
func (c *Catcher) Stop() {
	c.once.Do(func() {
		signal.Stop(c.c)
		close(c.stopped)
		c.cancel()
	})
}
