package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nix-build-shell/nbs/wrapper"
)

func TestBuilderFor(t *testing.T) {
	bs, _ := wrapper.ParseBuilders("ssh://a x86_64-linux /ka; ssh-ng://b x86_64-linux /kb", os.ReadFile)
	if b := builderFor("ssh-ng://b?remote-program=nix-daemon%20--option%20keep-failed%20true", bs); b.Key() != "/kb" {
		t.Errorf("rewritten URI: %+v", b)
	}
	if b := builderFor("ssh://a", bs); b.Key() != "/ka" {
		t.Errorf("plain URI: %+v", b)
	}
	if b := builderFor("ssh://c", bs); b.URI != "ssh://c" || b.Key() != "" {
		t.Errorf("unknown builder: %+v", b)
	}
}

// TestEnterFailedRemoteUnknownBuilder: a builder URI that only the log
// names (a build can print any line) is never connected to.
func TestEnterFailedRemoteUnknownBuilder(t *testing.T) {
	f := &Factory{}
	bs := []wrapper.Builder{{URI: "ssh://known"}}
	_, err := enterFailedRemote(context.Background(), f, wrapper.Failure{Drv: "/nix/store/x-evil.drv", KeptDir: "/tmp/d", Builder: "ssh://evil?base64-ssh-public-host-key=AAAA"}, bs, "")
	var he *hintError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "not one of this build's builders") {
		t.Errorf("err = %v; want a refusal to connect", err)
	}
}

// TestReplayFailedRemoteUnknownBuilder: nbs build --replay does not
// connect to a builder the log names but the build was not given, and
// says how to replay it there by hand.
func TestReplayFailedRemoteUnknownBuilder(t *testing.T) {
	f := &Factory{}
	bs := []wrapper.Builder{{URI: "ssh://known"}}
	err := replayFailedRemote(context.Background(), f, wrapper.Failure{Drv: "/nix/store/x-evil.drv", Builder: "ssh://evil"}, bs, &ReplayOptions{f: f, Run: "true"})
	var he *hintError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "not one of this build's builders") || !strings.Contains(he.hint, "replay it there with: nbs replay --remote ssh://evil /nix/store/x-evil.drv") {
		t.Errorf("err = %v; want a refusal to connect and the command", err)
	}
}

// TestRemoteUsage: flags that work on this machine only are refused with
// --remote before anything connects, and a missing DIR says so.
func TestRemoteUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"shell", "--remote", "ssh://h.invalid"}, "shell --remote: missing DIR"},
		{[]string{"shell", "--remote", "ssh://h.invalid", "--last"}, "--last finds kept directories on this machine"},
		{[]string{"shell", "--remote", "ssh://h.invalid", "--with", "gdb", "/tmp/d"}, "--with adds this machine's store paths"},
		{[]string{"shell", "--remote", "daemon", "/tmp/d"}, "not an ssh:// or ssh-ng:// builder"},
		{[]string{"replay", "--remote", "daemon", "/nix/store/x-y.drv"}, "not an ssh:// or ssh-ng:// builder"},
		{[]string{"replay", "--remote", "ssh://h.invalid", "--shipped", "/tmp/f", "/nix/store/x-y.drv"}, "give one of them"},
		{[]string{"replay", "--remote", "ssh://h.invalid", "/tmp/somewhere"}, "names no derivation; give the .drv"},
	} {
		_, stderr, code := cliRun(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("nbs %s: status %d, stderr %q; want 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}
