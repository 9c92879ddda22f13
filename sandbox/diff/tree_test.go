package diff

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// makeTrees builds a kept directory and a copy of it that keeps mtimes,
// as nbs's copy does, then lets edit change the copy.
func makeTrees(t *testing.T, edit func(new string)) (string, string) {
	t.Helper()
	root := t.TempDir()
	old, new := filepath.Join(root, "old"), filepath.Join(root, "new")
	then := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, d := range []string{old, new} {
		files := map[string]string{
			"env-vars":         "declare -x name=\"x\"\n",
			"src/main.c":       "int main() {\n\treturn 1;\n}\n",
			"src/README":       "read me\n",
			"src/touched":      "same\n",
			"src/gone.txt":     "bye\n",
			"src/bin.o":        "\x7fELF\x00\x01",
			"src/mode.sh":      "#!/bin/sh\n",
			"src/dir/deep.txt": "deep\n",
			"src/olddir/x":     "x\n",
			"src/becomes-dir":  "file\n",
		}
		for p, data := range files {
			f := filepath.Join(d, p)
			os.MkdirAll(filepath.Dir(f), 0o755)
			if err := os.WriteFile(f, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		os.Symlink("main.c", filepath.Join(d, "src/link"))
		os.Mkdir(filepath.Join(d, "src/empty"), 0o755)
		syscall.Mkfifo(filepath.Join(d, "src/fifo"), 0o644)
		filepath.Walk(d, func(p string, _ os.FileInfo, _ error) error {
			os.Chtimes(p, then, then)
			return nil
		})
	}
	// A socket cannot be copied: it is only in the kept directory.
	if l, err := (&net{}).listen(filepath.Join(old, "src/sock")); err == nil {
		defer l()
	}
	edit(new)
	return old, new
}

func TestTrees(t *testing.T) {
	old, new := makeTrees(t, func(d string) {
		os.WriteFile(filepath.Join(d, "src/main.c"), []byte("int main() {\n\treturn 0;\n}\n"), 0o644)
		os.Chtimes(filepath.Join(d, "src/touched"), time.Now(), time.Now())
		os.Remove(filepath.Join(d, "src/gone.txt"))
		os.WriteFile(filepath.Join(d, "src/new.txt"), []byte("new\n"), 0o644)
		os.WriteFile(filepath.Join(d, "src/bin.o"), []byte("\x7fELF\x00\x02"), 0o644)
		os.Chmod(filepath.Join(d, "src/mode.sh"), 0o755)
		os.Remove(filepath.Join(d, "src/link"))
		os.Symlink("README", filepath.Join(d, "src/link"))
		os.MkdirAll(filepath.Join(d, "src/build/obj"), 0o755)
		os.WriteFile(filepath.Join(d, "src/build/obj/a.o"), []byte("\x00"), 0o644)
		os.RemoveAll(filepath.Join(d, "src/olddir"))
		os.Remove(filepath.Join(d, "src/becomes-dir"))
		os.Mkdir(filepath.Join(d, "src/becomes-dir"), 0o755)
		os.WriteFile(filepath.Join(d, "src/dir/deep.txt"), []byte("deeper\n"), 0o644)
	})
	cs, err := Trees(old, new, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, string(c.Kind)+" "+c.Path)
	}
	want := []string{
		"M src/becomes-dir",
		"M src/bin.o",
		"A src/build",
		"A src/build/obj",
		"A src/build/obj/a.o",
		"M src/dir/deep.txt",
		"D src/gone.txt",
		"M src/link",
		"M src/main.c",
		"M src/mode.sh",
		"A src/new.txt",
		"D src/olddir",
		"D src/olddir/x",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s := Summarize(cs).String(); s != "6 files changed, 4 added, 3 removed" {
		t.Errorf("summary %q", s)
	}

	var out bytes.Buffer
	if err := Write(&out, old, new, cs); err != nil {
		t.Fatal(err)
	}
	golden(t, "write.golden", out.Bytes())

	// The patch applies to the kept directory with patch -p1 and makes
	// its text files those of the copy.
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("SKIPPED: patch not installed")
	}
	cmd := exec.Command("patch", "-p1", "--quiet", "--force")
	cmd.Dir, cmd.Stdin = old, &out
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch -p1: %v\n%s", err, b)
	}
	for _, f := range []string{"src/main.c", "src/new.txt", "src/dir/deep.txt"} {
		a, _ := os.ReadFile(filepath.Join(old, f))
		b, _ := os.ReadFile(filepath.Join(new, f))
		if string(a) != string(b) {
			t.Errorf("patched %s is %q, the copy has %q", f, a, b)
		}
	}
	for _, f := range []string{"src/gone.txt", "src/olddir/x"} {
		if _, err := os.Stat(filepath.Join(old, f)); err == nil {
			t.Errorf("patch left %s", f)
		}
	}
}

func TestTreesUnchanged(t *testing.T) {
	old, new := makeTrees(t, func(d string) {
		// Only times change: reading is not changing.
		os.Chtimes(filepath.Join(d, "src/README"), time.Now(), time.Now())
		os.Chtimes(filepath.Join(d, "src"), time.Now(), time.Now())
	})
	cs, err := Trees(old, new, Options{})
	if err != nil || len(cs) != 0 {
		t.Errorf("Trees = %v, %v; want no changes", cs, err)
	}
	if !Summarize(cs).Empty() {
		t.Error("summary of nothing is not empty")
	}
}

func TestTreesIgnore(t *testing.T) {
	old, new := makeTrees(t, func(d string) {
		os.RemoveAll(filepath.Join(d, "src/dir"))
		os.Remove(filepath.Join(d, "env-vars"))
	})
	cs, err := Trees(old, new, Options{Ignore: []string{"src/dir", "env-vars"}})
	if err != nil || len(cs) != 0 {
		t.Errorf("Trees = %v, %v; want the ignored entries left out", cs, err)
	}
}

func TestTreesUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("SKIPPED: root reads everything")
	}
	old, new := makeTrees(t, func(d string) { os.Chmod(filepath.Join(d, "src/dir"), 0) })
	defer os.Chmod(filepath.Join(new, "src/dir"), 0o755)
	if _, err := Trees(old, new, Options{}); err == nil {
		t.Error("no error for an unreadable directory")
	}
}

func TestSummaryString(t *testing.T) {
	for s, want := range map[Summary]string{
		{1, 0, 0}: "1 file changed, 0 added, 0 removed",
		{2, 3, 4}: "2 files changed, 3 added, 4 removed",
	} {
		if s.String() != want {
			t.Errorf("%+v: %q, want %q", s, s.String(), want)
		}
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", p, got)
	}
}

// net makes a unix socket without importing net for one test.
type net struct{}

func (*net) listen(p string) (func(), error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: p}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("bind: %w", err)
	}
	return func() { syscall.Close(fd) }, nil
}
