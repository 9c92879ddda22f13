//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nix-build-shell/nbs/nix"
)

// TestRelocatedVars: the variables Nix points at the build directory
// move to the copy, those merely below it keep their tail, others stay.
func TestRelocatedVars(t *testing.T) {
	top := "/tmp/nix-build-x.drv-0"
	ev, err := nix.ParseEnvVars(strings.NewReader(`declare -x NIX_BUILD_TOP="` + top + `"
declare -x TMPDIR="` + top + `"
declare -x TMP="` + top + `"
declare -x PWD="` + top + `/src/sub"
declare -x TEMP="` + top + `-other"
declare -x HOME="/homeless-shelter"
declare -x src="` + top + `/src"
`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range relocatedVars(ev, top, "/tmp/nbs-1/build") {
		got[v.Name] = v.Value
	}
	want := map[string]string{"NIX_BUILD_TOP": "/tmp/nbs-1/build", "TMPDIR": "/tmp/nbs-1/build", "TMP": "/tmp/nbs-1/build", "PWD": "/tmp/nbs-1/build/src/sub"}
	if len(got) != len(want) {
		t.Errorf("relocated %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// TestLooksLikeWorkDir: only directories shaped like nbs's own work
// directories are ever taken for abandoned ones.
func TestLooksLikeWorkDir(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, entries ...string) string {
		d := filepath.Join(base, name)
		os.MkdirAll(d, 0o755)
		for _, e := range entries {
			os.MkdirAll(filepath.Join(d, e), 0o755)
		}
		return d
	}
	for d, want := range map[string]bool{
		mk("nbs-1", ".lock", "build", "root", "tmp", "store"): true,
		mk("nbs-2", ".lock", "build"):                         true,
		mk("nbs-e2e-tmp-3"):                                   false,
		mk("nbs-e2e-bin-4", "nbs"):                            false,
		mk("nbs-5", "build", "notes.txt"):                     false,
	} {
		if got := looksLikeWorkDir(d); got != want {
			t.Errorf("looksLikeWorkDir(%s) = %v, want %v", filepath.Base(d), got, want)
		}
	}
}

// TestEndOrphans: what a command leaves running, a background job that
// left its session included, is ended once the command has, and nbs's
// earlier children are left alone.
func TestEndOrphans(t *testing.T) {
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	keep := exec.Command("sleep", "60")
	if err := keep.Start(); err != nil {
		t.Skip("SKIPPED: no sleep:", err)
	}
	defer keep.Process.Kill()
	before := children(os.Getpid())
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command("sh", "-c", `setsid sh -c 'sleep 61 & echo $! > "$1"; wait' sh "$1" & while ! [ -s "$1" ]; do sleep 0.01; done`, "sh", pidFile)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(pidFile)
	var orphan int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &orphan); err != nil || syscall.Kill(orphan, 0) != nil {
		t.Fatalf("no orphan running: %q", b)
	}
	endOrphans(before)
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(orphan, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the orphan still runs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if syscall.Kill(keep.Process.Pid, 0) != nil {
		t.Error("an earlier child was killed")
	}
}
