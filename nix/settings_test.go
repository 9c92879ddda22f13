package nix

import (
	"strings"
	"testing"
)

func TestParseSettings(t *testing.T) {
	in := `# nix show-config (2.8)
allow-new-privileges = false
filter-syscalls = true
sandbox-paths = /bin/sh=/nix/store/x-busybox/bin/busybox /etc/ssl?
sandbox-dev-shm-size = 50%
system-features = benchmark big-parallel kvm nixos-test
empty =
`
	s, err := ParseSettings(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if s.Bool("allow-new-privileges", true) || !s.Bool("filter-syscalls", false) || !s.Bool("missing", true) {
		t.Errorf("booleans wrong: %v", s)
	}
	if got := s.List("sandbox-paths"); len(got) != 2 || got[1] != "/etc/ssl?" {
		t.Errorf("sandbox-paths = %q", got)
	}
	if s["sandbox-dev-shm-size"] != "50%" || s["empty"] != "" {
		t.Errorf("values wrong: %v", s)
	}
	for _, bad := range []string{"no equals sign", "two words = x", " = value"} {
		if _, err := ParseSettings(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseSettings(%q) succeeded", bad)
		}
	}
}

func TestParseVersion(t *testing.T) {
	cases := map[string]Version{
		"nix (Nix) 2.8.0\n":                 {2, 8, 0},
		"nix-build (Nix) 2.34.1":            {2, 34, 1},
		"nix (Lix, like Nix) 2.91.1":        {2, 91, 1},
		"nix (Nix) 2.25pre20240801_abcdef0": {2, 25, 0},
	}
	for in, want := range cases {
		got, err := ParseVersion(in)
		if err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseVersion("garbage"); err == nil {
		t.Error("ParseVersion(garbage) succeeded")
	}
	if !(Version{2, 31, 4}).AtLeast(2, 31, 4) || (Version{2, 31, 3}).AtLeast(2, 31, 4) || !(Version{3, 0, 0}).AtLeast(2, 99, 9) {
		t.Error("AtLeast wrong")
	}
}

func FuzzParseSettings(f *testing.F) {
	f.Add("sandbox = true\nsandbox-paths = /bin/sh=/x ?\n# c\n")
	f.Add("a=b=c")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSettings(strings.NewReader(in))
		if err != nil {
			return
		}
		for k, v := range s {
			if k == "" || strings.ContainsAny(k, " \t\n=#") || strings.Contains(v, "\n") {
				t.Fatalf("bad setting %q = %q", k, v)
			}
		}
	})
}

func FuzzParseVersion(f *testing.F) {
	f.Add("nix (Nix) 2.8.0")
	f.Fuzz(func(t *testing.T, in string) {
		v, err := ParseVersion(in)
		if err == nil && (v.Major < 0 || v.Minor < 0 || v.Patch < 0) {
			t.Fatalf("negative version %v from %q", v, in)
		}
	})
}
