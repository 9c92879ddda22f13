//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, c := range []struct {
		in         string
		ppid       int
		start      int64
		wantErrSub string
	}{
		{in: "15557 (bash) S 15511 15557 15511 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 123456 1 2", ppid: 15511, start: 123456},
		// comm with spaces and parentheses: fields start after the last ')'.
		{in: "7 (a) b) c) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0", ppid: 1, start: 99},
		{in: "7 (x", wantErrSub: "no ')'"},
		{in: "7 (x) S 1 2", wantErrSub: "too few"},
		{in: "7 (x) S p 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0", wantErrSub: "bad"},
	} {
		st, err := parseStat([]byte(c.in))
		if c.wantErrSub != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErrSub) {
				t.Errorf("parseStat(%q) = %v, %v; want an error with %q", c.in, st, err, c.wantErrSub)
			}
			continue
		}
		if err != nil || st.ppid != c.ppid || st.startTicks != c.start {
			t.Errorf("parseStat(%q) = %+v, %v; want ppid %d start %d", c.in, st, err, c.ppid, c.start)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("15557 (bash) S 15511 15557 15511 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 123456 1 2"))
	f.Add([]byte("1 ())) S"))
	f.Fuzz(func(t *testing.T, b []byte) { parseStat(b) })
}

func TestMapID(t *testing.T) {
	m := []byte("      1000        999          1\n")
	if in, ok := mapID(m, 999); !ok || in != 1000 {
		t.Errorf("mapID(999) = %d, %v; want 1000", in, ok)
	}
	if _, ok := mapID(m, 1000); ok {
		t.Errorf("mapID(1000) mapped; want unmapped")
	}
	if in, ok := mapID([]byte("0 0 4294967295\n"), 30001); !ok || in != 30001 {
		t.Errorf("identity map: %d, %v", in, ok)
	}
	if in, ok := mapID([]byte("0 100000 65536\n"), 100005); !ok || in != 5 {
		t.Errorf("range map: %d, %v", in, ok)
	}
}

func FuzzMapID(f *testing.F) {
	f.Add([]byte("1000 999 1\n0 0 4294967295\n"), 999)
	// What once overflowed: fields beyond a u32, a sum beyond one.
	f.Add([]byte("9223372036854775807 0 10\n"), 5)
	f.Add([]byte("4294967295 0 4294967295\n"), 4294967294)
	f.Fuzz(func(t *testing.T, b []byte, host int) {
		if in, ok := mapID(b, host); ok && in < 0 {
			t.Errorf("mapID gave a negative id %d", in)
		}
	})
}

func TestFindBuild(t *testing.T) {
	a := Build{PID: 10, Name: "hello-2.12", Drv: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12.drv", Out: "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-hello-2.12",
		Env: []string{"outputs=out man", "out=/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-hello-2.12", "man=/nix/store/cccccccccccccccccccccccccccccccc-hello-2.12-man"}, Started: time.Unix(1, 0)}
	b := Build{PID: 20, Name: "wttr", Out: "/nix/store/dddddddddddddddddddddddddddddddd-wttr"}
	both := []Build{a, b}
	for _, c := range []struct {
		builds  []Build
		target  string
		wantPID int
		wantErr string
	}{
		{both, "hello-2.12", 10, ""},
		{both, "wttr", 20, ""},
		{both, "20", 20, ""},
		{both, a.Drv, 10, ""},
		{both, "hello-2.12.drv", 10, ""},
		{both, a.Out, 10, ""},
		{both, "/nix/store/cccccccccccccccccccccccccccccccc-hello-2.12-man", 10, ""},
		{[]Build{b}, "", 20, ""},
		{both, "", 0, "2 builds are running (hello-2.12 PID 10, wttr PID 20); name one"},
		{nil, "", 0, "no build is running on this machine"},
		{both, "nope", 0, "no running build nope (running: hello-2.12 PID 10, wttr PID 20)"},
		{nil, "nope", 0, "no running build nope (no build is running)"},
		{[]Build{a, a}, "hello-2.12", 0, "2 running builds match hello-2.12"},
		{both, "99", 0, "no running build 99"},
	} {
		got, err := FindBuild(c.builds, c.target)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("FindBuild(%q) = PID %d, %v; want error %q", c.target, got.PID, err, c.wantErr)
			}
			continue
		}
		if err != nil || got.PID != c.wantPID {
			t.Errorf("FindBuild(%q) = PID %d, %v; want PID %d", c.target, got.PID, err, c.wantPID)
		}
	}
}

func TestAttachShell(t *testing.T) {
	argv, env := attachShell(Build{PID: 3, Name: "x", Env: []string{"SHELL=/nix/store/s-bash/bin/bash", "A=b"}})
	if strings.Join(argv, " ") != "/nix/store/s-bash/bin/bash -i" || env[len(env)-1] != `PS1=[nbs attach x] \w \$ ` || len(env) != 3 {
		t.Errorf("attachShell = %q, %q", argv, env)
	}
	if argv, _ := attachShell(Build{PID: 3}); argv[0] != "sh" {
		t.Errorf("no SHELL: %q; want sh from PATH", argv)
	}
}

// TestRunningBuilds finds builders in a made-up /proc: a process with
// NIX_BUILD_TOP whose parent is Nix; not one whose parent is not (a
// nix-shell's child), nor one without it.
func TestRunningBuilds(t *testing.T) {
	proc := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		full := filepath.Join(proc, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stat := func(pid, ppid int, start int) string {
		return fmt.Sprintf("%d (x) S %d 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %d 0", pid, ppid, start)
	}
	write("stat", "cpu 1 2 3\nbtime 1000\n")
	write("10/stat", stat(10, 1, 1))
	write("10/comm", "nix-daemon\n")
	write("11/stat", stat(11, 10, 500))
	write("11/environ", "NIX_BUILD_TOP=/build\x00name=hello\x00out=/nix/store/x-hello\x00")
	write("11/cmdline", "bash\x00-e\x00builder.sh\x00")
	write("12/stat", stat(12, 11, 600))
	write("12/cmdline", "/nix/store/y-make/bin/make\x00check\x00")
	write("20/stat", stat(20, 1, 1))
	write("20/comm", "bash\n")
	write("21/stat", stat(21, 20, 700))
	write("21/environ", "NIX_BUILD_TOP=/tmp/nix-shell\x00name=shell\x00")
	write("30/stat", stat(30, 10, 800))
	write("30/environ", "name=not-a-builder\x00")
	got, err := runningBuilds(proc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("runningBuilds = %+v; want the one builder", got)
	}
	b := got[0]
	if b.PID != 11 || b.Name != "hello" || b.Out != "/nix/store/x-hello" || b.Doing != "make check" ||
		!b.Started.Equal(time.Unix(1005, 0)) || b.Top != filepath.Join(proc, "11/root/build") {
		t.Errorf("runningBuilds = %+v", b)
	}
}
