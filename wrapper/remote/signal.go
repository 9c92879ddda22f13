package remote

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"github.com/nix-build-shell/nbs/sandbox"
)

// interrupts is what catchSignals saw: the first signal, and the ssh it
// must end.
type interrupts struct {
	cancel func()
	mu     sync.Mutex
	sig    syscall.Signal
	cmd    *exec.Cmd
}

// catchSignals is the remote session's own signal handling: it catches
// SIGINT, SIGTERM and SIGHUP until stop is called. The first one cancels
// the session's context (cancel) and ends the running ssh with SIGTERM,
// which restores the terminal and hangs up the remote pty (the remote nbs
// then ends its sandbox); the session's cleanup runs afterwards.
func catchSignals(cancel func()) (in *interrupts, stop func()) {
	in = &interrupts{cancel: cancel}
	c := make(chan os.Signal, 4)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-c:
				in.mu.Lock()
				if in.sig == 0 {
					in.sig = s.(syscall.Signal)
				}
				if in.cmd != nil {
					in.cmd.Process.Signal(syscall.SIGTERM)
				}
				in.mu.Unlock()
				in.cancel()
			case <-done:
				return
			}
		}
	}()
	return in, func() { signal.Stop(c); close(done) }
}

// start starts cmd unless a signal came first.
func (in *interrupts) start(cmd *exec.Cmd) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.sig != 0 {
		return &sandbox.SignalError{Signal: in.sig}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ssh: %w", err)
	}
	in.cmd = cmd
	return nil
}

// err is the signal that ended the session, as an error; nil if none.
func (in *interrupts) err() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.sig == 0 {
		return nil
	}
	return &sandbox.SignalError{Signal: in.sig}
}
