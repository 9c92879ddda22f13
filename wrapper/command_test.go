package wrapper

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/nix-build-shell/nbs/nix"
)

func TestCommand(t *testing.T) {
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
		got := Command(c.program, c.args, c.host, quiet).Args
		if strings.Join(got, "\x00") != strings.Join(c.want, "\x00") {
			t.Errorf("%s: Command(%q)\n got %q\nwant %q", c.name, c.args, got, c.want)
		}
	}
}
