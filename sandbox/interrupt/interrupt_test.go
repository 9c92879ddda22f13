package interrupt

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// safetyNet catches the signals the tests send for the whole test, so
// that one that reaches no Catcher (after Stop) cannot kill the test
// binary. It returns the channel the signals arrive on.
func safetyNet(t *testing.T) <-chan os.Signal {
	c := make(chan os.Signal, 16)
	signal.Notify(c, Signals...)
	t.Cleanup(func() { signal.Stop(c) })
	return c
}

// kill sends sig to the test itself and waits until the safety net net
// has it: a signal still pending when a test's handlers go (signal.Stop
// of the last channel restores the default action) would end the test
// binary, as SIGHUP did once on a machine loaded with two test runs.
func kill(t *testing.T, net <-chan os.Signal, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), sig); err != nil {
		t.Fatal(err)
	}
	limit := time.After(time.Minute)
	for {
		select {
		case got := <-net:
			if got == sig {
				return
			}
		case <-limit:
			t.Fatalf("%v never arrived", sig)
		}
	}
}

// TestCatch: the first signal ends the context and is the one reported;
// a later one does not replace it.
func TestCatch(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			net := safetyNet(t)
			ctx, c := Catch(context.Background())
			defer c.Stop()
			if c.Err() != nil || c.Signal() != 0 {
				t.Fatalf("before a signal: Err %v, Signal %v", c.Err(), c.Signal())
			}
			kill(t, net, sig)
			<-ctx.Done()
			<-c.Interrupted()
			kill(t, net, syscall.SIGHUP)
			var e *Error
			if !errors.As(c.Err(), &e) || e.Signal != sig || c.Signal() != sig {
				t.Errorf("Err %v, Signal %v; want %v", c.Err(), c.Signal(), sig)
			}
			if e != nil && e.ExitCode() != 128+int(sig) {
				t.Errorf("ExitCode %d, want %d", e.ExitCode(), 128+int(sig))
			}
		})
	}
}

// TestStartForwards: a child started through the Catcher gets every
// signal, as the one that came or as the one asked for; the session's
// own status for it follows the 128+N rule.
func TestStartForwards(t *testing.T) {
	for _, c := range []struct {
		send, as, want syscall.Signal
	}{
		{syscall.SIGTERM, 0, syscall.SIGTERM},
		{syscall.SIGINT, syscall.SIGTERM, syscall.SIGTERM},
		{syscall.SIGHUP, 0, syscall.SIGHUP},
	} {
		t.Run(c.send.String(), func(t *testing.T) {
			net := safetyNet(t)
			_, ctr := Catch(context.Background())
			defer ctr.Stop()
			cmd := exec.Command("sleep", "600")
			if err := ctr.Start(cmd, c.as); err != nil {
				t.Fatal(err)
			}
			kill(t, net, c.send)
			cmd.Wait()
			if got := Status(cmd.ProcessState); got != 128+int(c.want) {
				t.Errorf("child's status %d, want %d (killed by %v)", got, 128+int(c.want), c.want)
			}
		})
	}
}

// TestStartAfterSignal: once a signal has come, nothing is started.
func TestStartAfterSignal(t *testing.T) {
	net := safetyNet(t)
	ctx, c := Catch(context.Background())
	defer c.Stop()
	kill(t, net, syscall.SIGINT)
	<-ctx.Done()
	cmd := exec.Command("sleep", "600")
	var e *Error
	if err := c.Start(cmd, 0); !errors.As(err, &e) || e.Signal != syscall.SIGINT {
		t.Fatalf("Start = %v, want the interruption", err)
	}
	if cmd.Process != nil {
		cmd.Process.Kill()
		t.Error("the command was started")
	}
}

// TestStop: after Stop the Catcher sees nothing (the safety net does),
// its context has ended, and Stop may be called again.
func TestStop(t *testing.T) {
	net := safetyNet(t)
	ctx, c := Catch(context.Background())
	c.Stop()
	<-ctx.Done()
	kill(t, net, syscall.SIGINT)
	if c.Err() != nil {
		t.Errorf("Err after Stop = %v, want nil", c.Err())
	}
	c.Stop()
}

// TestParentEnds: the end of the parent context ends the Catcher's
// context without a signal.
func TestParentEnds(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	ctx, c := Catch(parent)
	defer c.Stop()
	cancel()
	<-ctx.Done()
	if c.Err() != nil {
		t.Errorf("Err = %v, want nil", c.Err())
	}
}

func TestStatus(t *testing.T) {
	if Status(nil) != -1 {
		t.Errorf("Status(nil) = %d", Status(nil))
	}
	cmd := exec.Command("sh", "-c", "exit 7")
	cmd.Run()
	if got := Status(cmd.ProcessState); got != 7 {
		t.Errorf("exit 7: Status %d", got)
	}
	cmd = exec.Command("sh", "-c", "kill -KILL $$")
	cmd.Run()
	if got := Status(cmd.ProcessState); got != 128+9 {
		t.Errorf("killed: Status %d, want 137", got)
	}
	if ExitCode(os.Interrupt) != 130 {
		t.Errorf("ExitCode(os.Interrupt) = %d", ExitCode(os.Interrupt))
	}
}
