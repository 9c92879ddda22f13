package sandbox

import (
	"flag"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestNewPlanGolden(t *testing.T) {
	cases := []struct {
		name string
		cfg  PlanConfig
	}{
		{"full-store", PlanConfig{BuildDir: "/tmp/nbs-1/build", TmpDir: "/tmp/nbs-1/tmp", Shell: "/nix/store/aaaa-bash/bin/bash", KVM: true}},
		{"closure", PlanConfig{
			BuildDir: "/tmp/nbs-1/build", TmpDir: "/tmp/nbs-1/tmp", SandboxBuildDir: "/build", StoreDirSource: "/tmp/nbs-1/store",
			StorePaths: []string{"/nix/store/bbbb-glibc", "/nix/store/aaaa-bash"},
			ShmSize:    "25%", EtcMode: 0o755,
			Extra: []PathMapping{{Target: "/bin/sh", Source: "/nix/store/aaaa-bash/bin/bash"}, {Target: "/etc/ssl", Source: "/etc/ssl", Optional: true}},
		}},
		{"fixed-output", PlanConfig{BuildDir: "/b", TmpDir: "/t", HostNetwork: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			for _, op := range NewPlan(c.cfg) {
				b.WriteString(op.String())
				b.WriteByte('\n')
			}
			golden := filepath.Join("testdata", "plan", c.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("plan differs from %s:\n%s", golden, b.String())
			}
		})
	}
}

// TestNewPlanInvariants checks what must hold for any configuration.
func TestNewPlanInvariants(t *testing.T) {
	ops := NewPlan(PlanConfig{BuildDir: "/b", TmpDir: "/t", StoreDirSource: "/s", Shell: "/nix/store/x-bash", StorePaths: []string{"/nix/store/x-bash"}})
	seen := map[string]bool{}
	var lastBind string
	mounted := false
	for _, op := range ops {
		if op.Target == "" || op.Target[0] != '/' {
			t.Errorf("%s: target not absolute", op)
		}
		switch op.Kind {
		case OpBind:
			if mounted {
				t.Errorf("%s comes after the file system mounts; Nix binds first", op)
			}
			if op.Target < lastBind {
				t.Errorf("binds not sorted by target: %s after %s", op.Target, lastBind)
			}
			lastBind = op.Target
			if strings.HasPrefix(op.Target, "/nix/store/") && !op.ReadOnly {
				t.Errorf("%s: store paths must be read-only", op)
			}
		case OpMount:
			mounted = true
		case OpRebind:
			// Its source is inside the sandbox: a mount made earlier.
			if !seen["mount "+path.Dir(op.Source)] {
				t.Errorf("%s comes before the mount of %s", op, path.Dir(op.Source))
			}
		}
		seen[op.Kind.String()+" "+op.Target] = true
	}
	if seen["symlink /dev/ptmx"] {
		t.Error("/dev/ptmx is a symlink; the assignment wants a character device")
	}
	for _, want := range []string{"bind /build", "bind /tmp", "bind /dev/null", "mount /proc", "mount /dev/pts", "mount /dev/shm", "file /etc/passwd", "file /etc/group", "file /etc/hosts", "rebind /dev/ptmx", "chmod /build"} {
		if !seen[want] {
			t.Errorf("plan has no %q", want)
		}
	}
}

func TestParsePathMapping(t *testing.T) {
	cases := []struct {
		in      string
		want    PathMapping
		wantErr bool
	}{
		{"/bin/sh=/nix/store/x-bash/bin/bash", PathMapping{Target: "/bin/sh", Source: "/nix/store/x-bash/bin/bash"}, false},
		{"/etc/ssl?", PathMapping{Target: "/etc/ssl", Source: "/etc/ssl", Optional: true}, false},
		{"/dev/kvm=/dev/kvm?", PathMapping{Target: "/dev/kvm", Source: "/dev/kvm", Optional: true}, false},
		{"/a//b/=/c", PathMapping{Target: "/a/b", Source: "/c"}, false},
		{"relative", PathMapping{}, true},
		{"/a=relative", PathMapping{}, true},
	}
	for _, c := range cases {
		got, err := parsePathMapping(c.in)
		if (err != nil) != c.wantErr || (!c.wantErr && got != c.want) {
			t.Errorf("parsePathMapping(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.wantErr)
		}
	}
}

func TestCheckBuildDir(t *testing.T) {
	for _, ok := range []string{"/build", "/tmp/nix-build-x.drv-0", "/nix-build", "/b/c"} {
		if err := checkBuildDir(ok); err != nil {
			t.Errorf("checkBuildDir(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"/", "/dev", "/dev/x", "/etc", "/nix", "/nix/store/x", "/tmp", "/proc/1", "/bin", "/a/../dev", "relative", "/build/"} {
		if err := checkBuildDir(bad); err == nil {
			t.Errorf("checkBuildDir(%q) accepted", bad)
		}
	}
}
