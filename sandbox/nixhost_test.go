package sandbox

import (
	"testing"

	"github.com/nix-build-shell/nbs/nix"
)

func TestFactsFor(t *testing.T) {
	def := nix.Settings{}
	cases := []struct {
		v        string
		s        nix.Settings
		seccomp  *SeccompProfile
		nnp      bool
		etc      uint32
		extraLen int
	}{
		// fchmodat2 is filtered for every version (see factsFor).
		{"2.8.0", def, &SeccompProfile{Fchmodat2: true}, true, 0o755, 0},
		{"2.13.3", def, &SeccompProfile{Fchmodat2: true}, true, 0o555, 0},
		{"2.18.4", def, &SeccompProfile{Fchmodat2: true}, true, 0o555, 0},
		{"2.20.0", def, &SeccompProfile{Fchmodat2: true}, true, 0o555, 0},
		{"2.24.0", def, &SeccompProfile{Fchmodat2: true, GetXattr: true}, true, 0o555, 0},
		{"2.34.0", nix.Settings{"sandbox-paths": "/bin/sh=/nix/store/x-busybox/bin/busybox /etc/ssl?"}, &SeccompProfile{Fchmodat2: true, GetXattr: true}, true, 0o555, 2},
		{"2.35.1", def, &SeccompProfile{Fchmodat2: true, GetXattr: true, ListXattr: true}, true, 0o555, 0},
		{"2.8.0", nix.Settings{"filter-syscalls": "false"}, nil, false, 0o755, 0},
		{"2.34.5", nix.Settings{"filter-syscalls": "false"}, nil, true, 0o555, 0},
		{"2.34.4", nix.Settings{"filter-syscalls": "false"}, nil, false, 0o555, 0},
		{"2.8.0", nix.Settings{"allow-new-privileges": "true"}, &SeccompProfile{Fchmodat2: true}, false, 0o755, 0},
	}
	for _, c := range cases {
		v, err := nix.ParseVersion(c.v)
		if err != nil {
			t.Fatal(err)
		}
		f, errs := factsFor(v, c.s)
		if len(errs) > 0 {
			t.Errorf("%s: %v", c.v, errs)
		}
		if (f.seccomp == nil) != (c.seccomp == nil) || (f.seccomp != nil && *f.seccomp != *c.seccomp) {
			t.Errorf("%s %v: seccomp %+v, want %+v", c.v, c.s, f.seccomp, c.seccomp)
		}
		if f.noNewPrivs != c.nnp || f.etcMode != c.etc || len(f.extra) != c.extraLen {
			t.Errorf("%s %v: nnp %v etc %#o extra %d; want %v %#o %d", c.v, c.s, f.noNewPrivs, f.etcMode, len(f.extra), c.nnp, c.etc, c.extraLen)
		}
	}
}
