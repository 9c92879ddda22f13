//go:build linux && (amd64 || arm64)

package nofile_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/nix-build-shell/nbs/sandbox/nofile"
)

// TestStart: started with a soft limit Go raises, the package still has
// the one it was started with: its init ran before syscall's. (An
// external test package: the package's own tests would add their
// imports, syscall among them, to the package.)
func TestStart(t *testing.T) {
	if os.Getenv("NBS_NOFILE_CHILD") != "" {
		var now syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
			t.Fatal(err)
		}
		l, ok := nofile.Start()
		fmt.Printf("start %v %d %d now %d %d\n", ok, l.Cur, l.Max, now.Cur, now.Max)
		return
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 64 {
		t.Skipf("hard RLIMIT_NOFILE %d: too low to start a child below it", lim.Max)
	}
	// Setrlimit also tells os/exec not to restore Go's saved limit in
	// the child, which starts with this one.
	low := syscall.Rlimit{Cur: 32, Max: lim.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	cmd := exec.Command(os.Args[0], "-test.run=^TestStart$")
	cmd.Env = append(os.Environ(), "NBS_NOFILE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := fmt.Sprintf("start true 32 %d now %d %d", lim.Max, lim.Max-1, lim.Max)
	if !strings.Contains(string(out), want) {
		t.Errorf("child printed\n%s\nwant %q", out, want)
	}
}
