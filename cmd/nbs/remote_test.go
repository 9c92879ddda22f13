package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/wrapper"
)

func TestNixArgs(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	v28 := nix.Version{Major: 2, Minor: 8}
	trusted := &nix.Host{Version: v28, Settings: nix.Settings{"builders": "ssh://conf x86_64-linux /k", "trusted-users": "*", "experimental-features": "nix-command"}}
	untrusted := &nix.Host{Version: v28, Settings: nix.Settings{"builders": "ssh://conf x86_64-linux /k", "trusted-users": "nobody-at-all", "experimental-features": "nix-command"}}
	flakesOn := &nix.Host{Version: v28, Settings: nix.Settings{"experimental-features": "nix-command flakes"}}
	keepConf := "ssh://conf?remote-program=nix-store%20--option%20keep-failed%20true x86_64-linux /k"
	cases := []struct {
		name    string
		program string
		args    []string
		host    *nix.Host
		want    []string
	}{
		{"user's builders", "nix-build", []string{"--builders", "ssh-ng://b x86_64-linux", "f.nix"}, nil,
			[]string{"--keep-failed", "--builders", "ssh-ng://b?remote-program=nix-daemon%20--option%20keep-failed%20true x86_64-linux", "f.nix"}},
		{"configured builders", "nix-build", []string{"f.nix"}, trusted,
			[]string{"--builders", keepConf, "--keep-failed", "f.nix"}},
		{"keep-failed refused", "nix-build", []string{"--no-keep-failed", "--builders", "ssh://b", "f.nix"}, trusted,
			[]string{"--no-keep-failed", "--builders", "ssh://b", "f.nix"}},
		{"flake", "nix", []string{".#x"}, trusted,
			[]string{"build", "--builders", keepConf, "--extra-experimental-features", "nix-command flakes", "--keep-failed", "-L", ".#x"}},
		{"--file", "nix", []string{"--file", "x.nix", "a"}, flakesOn,
			[]string{"build", "--extra-experimental-features", "nix-command", "--keep-failed", "-L", "--file", "x.nix", "a"}},
		{"flakes enabled", "nix", []string{".#x"}, flakesOn,
			[]string{"build", "--extra-experimental-features", "nix-command", "--keep-failed", "-L", ".#x"}},
		{"old nix", "nix", []string{"-f", "x.nix", "a"}, &nix.Host{Version: nix.Version{Major: 2, Minor: 3}},
			[]string{"build", "--keep-failed", "-L", "-f", "x.nix", "a"}},
	}
	if os.Geteuid() != 0 {
		cases = append(cases, struct {
			name    string
			program string
			args    []string
			host    *nix.Host
			want    []string
		}{"untrusted", "nix-build", []string{"f.nix"}, untrusted, []string{"--keep-failed", "f.nix"}})
	}
	for _, c := range cases {
		got, _ := nixArgs(c.program, c.args, c.host, quiet)
		if strings.Join(got, "\x00") != strings.Join(c.want, "\x00") {
			t.Errorf("%s: nixArgs(%q)\n got %q\nwant %q", c.name, c.args, got, c.want)
		}
	}
}

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
	} {
		_, stderr, code := cliRun(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("nbs %s: status %d, stderr %q; want 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}
