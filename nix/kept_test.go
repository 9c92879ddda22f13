package nix

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFindKept(t *testing.T) {
	root := t.TempDir()
	tmp, state := filepath.Join(root, "tmp"), filepath.Join(root, "state")
	now := time.Now()
	mk := func(dir, env string, age time.Duration) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if env != "" {
			p := filepath.Join(dir, "env-vars")
			os.WriteFile(p, []byte(env), 0o644)
			os.Chtimes(p, now.Add(-age), now.Add(-age))
		}
		return dir
	}
	flat := mk(filepath.Join(tmp, "nix-build-hello-2.12.drv-0"), "declare -x name=\"hello-2.12\"\n", 3*time.Hour)
	nested := mk(filepath.Join(tmp, "nix-build-wttr.drv-1", "build"), "declare -x name=\"wttr-1.0\"\n", time.Minute)
	builds := mk(filepath.Join(state, "builds", "nix-123-0", "build"), "declare -x name=\"from-builds\"\n", 2*time.Minute)
	lix := mk(filepath.Join(state, "b", "abc", "b"), "declare -x name=\"from-lix\"\n", time.Hour)
	noName := mk(filepath.Join(tmp, "nix-build-noname.drv-3"), "declare -x out=\"/nix/store/x\"\n", 5*time.Hour)
	mk(filepath.Join(tmp, "nix-build-running.drv-0"), "", 0) // no env-vars: not a build directory
	mk(filepath.Join(tmp, "unrelated"), "declare -x name=\"other\"\n", 0)

	got := FindKept(KeptSearch{TmpDirs: []string{tmp, tmp + "/."}, StateDir: state})
	var lines []string
	for _, k := range got {
		lines = append(lines, k.Name+" "+k.Dir)
	}
	want := []string{
		"wttr-1.0 " + nested,
		"from-builds " + builds,
		"from-lix " + lix,
		"hello-2.12 " + flat,
		"noname " + noName,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("FindKept:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if d := got[0].Time.Sub(now.Add(-time.Minute)); d < -time.Second || d > time.Second {
		t.Errorf("time %v, want env-vars' mtime %v", got[0].Time, now.Add(-time.Minute))
	}
}

func TestFindKeptUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("SKIPPED: root reads everything")
	}
	tmp := t.TempDir()
	d := filepath.Join(tmp, "nix-build-secret.drv-0")
	os.Mkdir(d, 0o755)
	os.WriteFile(filepath.Join(d, "env-vars"), []byte("declare -x name=\"secret\"\n"), 0)
	got := FindKept(KeptSearch{TmpDirs: []string{tmp}})
	if len(got) != 1 || got[0].Name != "secret" || got[0].Err == nil {
		t.Errorf("FindKept = %+v; want the directory, named from its name, with the error", got)
	}
}

func TestDirSize(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "a"), make([]byte, 1000), 0o644)
	os.Mkdir(filepath.Join(d, "sub"), 0o755)
	os.WriteFile(filepath.Join(d, "sub", "b"), make([]byte, 24), 0o644)
	os.Link(filepath.Join(d, "a"), filepath.Join(d, "sub", "hard"))
	os.Symlink("a", filepath.Join(d, "link"))
	if size, complete := DirSize(d); size != 1024 || !complete {
		t.Errorf("DirSize = %d, %v; want 1024, true", size, complete)
	}
}

// TestFindKeptLayouts: every layout of ParseBuildDir is found, named
// from the directory when env-vars has no name, and a temporary
// directory's other entries are left alone even with env-vars.
func TestFindKeptLayouts(t *testing.T) {
	root := t.TempDir()
	tmp, state := filepath.Join(root, "tmp"), filepath.Join(root, "state")
	mk := func(rel ...string) string {
		t.Helper()
		d := filepath.Join(rel...)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "env-vars"), []byte("declare -x out=\"/nix/store/x\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	want := map[string]string{
		mk(tmp, "nix-build-flat.drv-0"):                          "flat",
		mk(tmp, "nix-build-nested.drv-1", "build"):               "nested",
		mk(state, "builds", "nix-build-pid.drv-1234-5", "build"): "pid",
		mk(state, "builds", "nix-1234-6", "build"):               "",
		mk(tmp, "nix-1234-7", "build"):                           "",    // build-dir = /tmp, Nix 2.30.4+
		mk(tmp, "nix-1234-8"):                                    "",    // without the sandbox
		mk(state, "builds", "nix-build-lix.drv-0"):               "lix", // Lix 2.92.2, 2.93.1
		mk(state, "b", "0f3k", "b"):                              "",
		mk(state, "builds", "nix-build-lixb.drv-1", "b"):         "lixb", // Lix since June 2025
	}
	mk(tmp, "nix-shell-1-2")
	mk(tmp, "nix-build-hello")
	mk(tmp, "b", "x", "b")
	got := map[string]string{}
	for _, k := range FindKept(KeptSearch{TmpDirs: []string{tmp}, StateDir: state}) {
		got[k.Dir] = k.Name
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FindKept found\n%v\nwant\n%v", got, want)
	}
}

func TestKeptSearchRoots(t *testing.T) {
	s := KeptSearch{TmpDirs: []string{"/t1", "/tmp"}, StateDir: "/nix/var/nix"}
	want := []string{"/t1", "/tmp", "/nix/var/nix/builds", "/nix/var/nix/b"}
	if got := s.Roots(); !reflect.DeepEqual(got, want) {
		t.Errorf("Roots = %q, want %q", got, want)
	}
	wantLoc := []string{"/t1/nix-build-*", "/tmp/nix-build-*", "/nix/var/nix/builds/*", "/nix/var/nix/b/*"}
	if got := s.Locations(); !reflect.DeepEqual(got, wantLoc) {
		t.Errorf("Locations = %q, want %q", got, wantLoc)
	}
	if got := (KeptSearch{TmpDirs: []string{"/t"}}).Roots(); !reflect.DeepEqual(got, []string{"/t"}) {
		t.Errorf("Roots without a state dir = %q", got)
	}
}
