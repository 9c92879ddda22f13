package remote

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestUnameMatches(t *testing.T) {
	cases := []struct {
		uname, goos, goarch string
		want                bool
	}{
		{"Linux x86_64", "linux", "amd64", true},
		{"Linux aarch64", "linux", "arm64", true},
		{"Linux aarch64", "linux", "amd64", false},
		{"Darwin arm64", "linux", "arm64", false},
		{"Darwin arm64", "darwin", "arm64", true},
		{"", "linux", "amd64", false},
		{"Linux x86_64 extra", "linux", "amd64", false},
	}
	for _, c := range cases {
		if got := unameMatches(c.uname, c.goos, c.goarch); got != c.want {
			t.Errorf("unameMatches(%q, %s/%s) = %v", c.uname, c.goos, c.goarch, got)
		}
	}
}

func TestParseProbe(t *testing.T) {
	p := parseProbe("dir=/tmp/nbs-remote.abc\nnbs=/usr/bin/nbs\nuname=Linux x86_64\n")
	if p.dir != "/tmp/nbs-remote.abc" || p.nbs != "/usr/bin/nbs" || p.uname != "Linux x86_64" {
		t.Errorf("%+v", p)
	}
	if p := parseProbe("uname=Linux x86_64\n"); p.dir != "" || p.nbs != "" {
		t.Errorf("%+v", p)
	}
}

// TestScripts runs the scripts sent to the builder with this
// machine's sh: the probe makes a private directory the sandbox user can
// pass through, the run script records its pid and becomes the command,
// and the cleanup ends only an nbs and removes the directory.
func TestScripts(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SKIPPED: the cleanup reads /proc")
	}
	tmp := t.TempDir()
	sh := func(script string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	p := parseProbe(sh(probeScript("")))
	if !strings.HasPrefix(p.dir, tmp+"/nbs-remote.") || p.uname == "" {
		t.Fatalf("probe: %+v", p)
	}
	if fi, err := os.Stat(p.dir); err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("probe's directory: %v %v", fi.Mode(), err)
	}
	if p.shipped {
		t.Errorf("probe without a file to ship says shipped: %+v", p)
	}

	// A derivation shipped with the probe: its stdin, in a file only
	// the user reads, whatever the name's characters.
	ship := exec.Command("sh", "-c", probeScript("abc-it's $x.drv"))
	ship.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp}
	ship.Stdin = strings.NewReader("Derive([])")
	out, err := ship.Output()
	if sp := parseProbe(string(out)); err != nil || !sp.shipped || sp.dir == "" {
		t.Errorf("probe with a file: %v %+v", err, sp)
	} else {
		f := filepath.Join(sp.dir, "abc-it's $x.drv")
		got, err := os.ReadFile(f)
		fi, _ := os.Stat(f)
		if err != nil || string(got) != "Derive([])" || fi.Mode().Perm() != 0o600 {
			t.Errorf("shipped file: %q %v %v", got, fi.Mode(), err)
		}
		sh(cleanupScript(sp.dir))
	}

	// copy: the binary arrives on stdin.
	cmd := exec.Command("sh", "-c", copyScript(p.dir))
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("SKIPPED: no sleep")
	}
	in, _ := os.Open(sleep)
	defer in.Close()
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	nbs := filepath.Join(p.dir, "nbs")

	// run: the "nbs" (a sleep here) keeps the shell's pid.
	run := exec.Command("sh", "-c", runScript(p.dir, nbs, []string{"60"}, "export X=1; "))
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { run.Wait(); close(done) }()
	// The pid is written before the exec: wait for both, with a limit
	// that only catches a hang.
	exe := ""
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(p.dir, "pid"))
		exe, _ = os.Readlink("/proc/" + strconv.Itoa(run.Process.Pid) + "/exe")
		if strings.TrimSpace(string(b)) != "" && exe == nbs {
			break
		}
	}
	if exe != nbs {
		t.Fatalf("run script's process is %s, want %s", exe, nbs)
	}

	// cleanup: the running "nbs" ends, the directory goes.
	sh(cleanupScript(p.dir))
	select {
	case <-done:
	case <-time.After(2 * time.Minute): // only catches a hang
		run.Process.Kill()
		t.Fatal("cleanup left the remote nbs running")
	}
	if _, err := os.Stat(p.dir); !os.IsNotExist(err) {
		t.Errorf("cleanup left %s: %v", p.dir, err)
	}

	// A pid that is no nbs (reused) is left alone.
	p = parseProbe(sh(probeScript("")))
	other := exec.Command(sleep, "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	os.WriteFile(filepath.Join(p.dir, "pid"), []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o600)
	sh(cleanupScript(p.dir))
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("cleanup signalled a process that is no nbs: %v", err)
	}
	if _, err := os.Stat(p.dir); !os.IsNotExist(err) {
		t.Errorf("cleanup left %s", p.dir)
	}
}
