package nix

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// mkTree creates files (names ending in "/" are directories) under a new
// temporary directory and returns it.
func mkTree(t *testing.T, names ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, n := range names {
		p := filepath.Join(root, n)
		if strings.HasSuffix(n, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("declare -x A=\"1\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFindBuildDir(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  string // relative to the root
	}{
		{"flat (Nix ≤ 2.23)", []string{"env-vars", "source/"}, "."},
		{"nested build (Nix 2.24+)", []string{"build/env-vars"}, "build"},
		{"nested b (Lix 2.94+)", []string{"b/env-vars"}, "b"},
		{"flat wins over nested", []string{"env-vars", "build/env-vars"}, "."},
		{"build wins over b", []string{"build/env-vars", "b/env-vars"}, "build"},
		{"b when build has none", []string{"build/", "b/env-vars"}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := mkTree(t, tt.files...)
			got, err := FindBuildDir(root)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(root, tt.want); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

// TestFindBuildDirOnlyChecksExistence: recent nixpkgs makes env-vars 0600
// for the build user, and a dangling symlink is still a sign of a build.
func TestFindBuildDirOnlyChecksExistence(t *testing.T) {
	root := mkTree(t)
	if err := os.WriteFile(filepath.Join(root, "env-vars"), nil, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := FindBuildDir(root); err != nil || got != root {
		t.Errorf("mode 0 env-vars: got %q, %v", got, err)
	}

	root = mkTree(t, "build/")
	if err := os.Symlink("/nonexistent", filepath.Join(root, "build", "env-vars")); err != nil {
		t.Fatal(err)
	}
	if got, err := FindBuildDir(root); err != nil || got != filepath.Join(root, "build") {
		t.Errorf("dangling symlink: got %q, %v", got, err)
	}

	// The directory is returned as given, not cleaned.
	root = mkTree(t, "env-vars")
	if got, err := FindBuildDir(root + "/"); err != nil || got != root+"/" {
		t.Errorf("trailing slash: got %q, %v", got, err)
	}
}

func TestFindBuildDirErrors(t *testing.T) {
	empty := mkTree(t, "source/", "build/source/")
	buildFile := mkTree(t, "build")
	file := filepath.Join(mkTree(t, "env-vars"), "env-vars")
	missing := filepath.Join(t.TempDir(), "nix-build-x.drv-0")
	// Structured attrs, failed before stdenv's first phase (Nix < 2.13.4
	// with nixpkgs' source-stdenv.sh): Nix's .attrs files, no env-vars.
	attrsOnly := mkTree(t, "build/.attrs.json", "build/.attrs.sh")

	tests := []struct {
		dir     string
		wantErr error
		msg     string
	}{
		{empty, ErrNotKeptDir, "find build directory: " + empty + " has no env-vars, build/env-vars or b/env-vars: not a kept Nix build directory"},
		{buildFile, ErrNotKeptDir, buildFile + " has no env-vars"},
		{attrsOnly, ErrNoEnvVarsYet, filepath.Join(attrsOnly, "build") + " has .attrs.json but no env-vars: the build failed before stdenv's first phase wrote env-vars"},
		{missing, fs.ErrNotExist, "find build directory: stat " + missing + ": no such file or directory"},
		{file, syscall.ENOTDIR, "find build directory: open " + file + ": not a directory"},
	}
	for _, tt := range tests {
		_, err := FindBuildDir(tt.dir)
		if !errors.Is(err, tt.wantErr) || !strings.Contains(fmt.Sprint(err), tt.msg) {
			t.Errorf("FindBuildDir(%s) = %v; want %v containing %q", tt.dir, err, tt.wantErr, tt.msg)
		}
	}
}

// TestFindBuildDirPermission covers kept directories the caller may not
// search: the top directory of Nix 2.24–2.24.6 and friends is root 0700
// (src/libstore/unix/build/local-derivation-goal.cc,
// LocalDerivationGoal::startBuilder: createTempDir(buildDir, "nix",
// 0700), the build in its build/), and an unfinished build's directory belongs
// to its build user. The error must name the directory, not claim there is
// no build. Root can search anything, so as root the check runs in a copy
// of the test binary started as nobody.
func TestFindBuildDirPermission(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(base, "nix-build-x.drv-0")
	nested := filepath.Join(base, "nix-1-0")
	for _, d := range []string{filepath.Join(top), filepath.Join(nested, "build")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "env-vars"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Read permission without search permission is not enough either.
	if err := os.Chmod(top, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(nested, "build"), 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(filepath.Join(nested, "build"), 0); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		os.Chmod(top, 0o755)
		os.Chmod(filepath.Join(nested, "build"), 0o755)
	})

	find := FindBuildDir
	if os.Geteuid() == 0 {
		find = findAsNobody(t, base)
	}
	for _, tt := range []struct{ dir, msg string }{
		{top, "find build directory: lstat " + top + "/env-vars: permission denied"},
		{nested, "find build directory: lstat " + nested + "/build/env-vars: permission denied"},
	} {
		_, err := find(tt.dir)
		if !errors.Is(err, fs.ErrPermission) || err.Error() != tt.msg {
			t.Errorf("FindBuildDir(%s) = %v; want %q", tt.dir, err, tt.msg)
		}
	}
}

// findAsNobody returns a FindBuildDir that runs in a copy of the test
// binary as uid/gid 65534 (the copy, because the go tool's build directory
// is 0700).
func findAsNobody(t *testing.T, dir string) func(string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "nix.test")
	if err := copyFile(exe, self); err != nil {
		t.Fatal(err)
	}
	for d := dir; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
			os.Chmod(d, fi.Mode().Perm()|0o005)
		}
	}
	return func(path string) (string, error) {
		cmd := exec.Command(exe, "-test.run=^TestFindBuildDirHelper$")
		cmd.Dir = dir
		cmd.Env = []string{"NBS_FIND_BUILD_DIR=" + path}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as nobody: %v\n%s", err, out)
		}
		res, _, _ := strings.Cut(string(out), "\n")
		kind, msg, _ := strings.Cut(res, " ")
		switch kind {
		case "ok":
			return msg, nil
		case "eacces":
			return "", fmt.Errorf("%s%w", strings.TrimSuffix(msg, "permission denied"), fs.ErrPermission)
		}
		return "", errors.New(msg)
	}
}

// TestFindBuildDirHelper is the child half of findAsNobody.
func TestFindBuildDirHelper(t *testing.T) {
	dir := os.Getenv("NBS_FIND_BUILD_DIR")
	if dir == "" {
		t.Skip("runs only as the helper process of TestFindBuildDirPermission")
	}
	got, err := FindBuildDir(dir)
	switch {
	case err == nil:
		fmt.Println("ok", got)
	case errors.Is(err, fs.ErrPermission):
		fmt.Println("eacces", err)
	default:
		fmt.Println("error", err)
	}
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func TestParseBuildDir(t *testing.T) {
	tests := []struct {
		in   string
		want BuildDir // Top "" means not recognised
	}{
		// Nix 2.3–2.23, Lix ≤ 2.93: flat.
		{"/tmp/nix-build-hello-2.12.drv-0", BuildDir{"/tmp/nix-build-hello-2.12.drv-0", LayoutNamed, ".", "hello-2.12"}},
		// Nix 2.24–2.29: nested build/.
		{"/tmp/nix-build-hello.drv-12/build", BuildDir{"/tmp/nix-build-hello.drv-12", LayoutNamed, "build", "hello"}},
		// Nix 2.30.0–2.31.1: PID and counter, nested.
		{"/nix/var/nix/builds/nix-build-hello.drv-1234-4294967295/build", BuildDir{"/nix/var/nix/builds/nix-build-hello.drv-1234-4294967295", LayoutNamedPID, "build", "hello"}},
		{"/nix/var/nix/builds/nix-build-hello.drv-1234-5", BuildDir{"/nix/var/nix/builds/nix-build-hello.drv-1234-5", LayoutNamedPID, ".", "hello"}},
		// Nix 2.30.4+, 2.31.2+: no name.
		{"/nix/var/nix/builds/nix-1234-99/build", BuildDir{"/nix/var/nix/builds/nix-1234-99", LayoutPID, "build", ""}},
		{"/nix/var/nix/builds/nix-1234-99", BuildDir{"/nix/var/nix/builds/nix-1234-99", LayoutPID, ".", ""}},
		{"/tmp/nix-1-2/", BuildDir{"/tmp/nix-1-2", LayoutPID, ".", ""}},
		// Lix 2.94+: b/ID/b, the note names b/ID.
		{"/nix/var/nix/b/2xv8kq/b", BuildDir{"/nix/var/nix/b/2xv8kq", LayoutLix, "b", ""}},
		{"/nix/var/nix/b/2xv8kq", BuildDir{"/nix/var/nix/b/2xv8kq", LayoutLix, ".", ""}},
		{"b/x", BuildDir{"b/x", LayoutLix, ".", ""}},
		// A derivation name holding .drv- and digits: the last one counts.
		{"nix-build-a.drv-3.drv-0", BuildDir{"nix-build-a.drv-3.drv-0", LayoutNamed, ".", "a.drv-3"}},
		{"nix-build-a-1.drv-2-3", BuildDir{"nix-build-a-1.drv-2-3", LayoutNamedPID, ".", "a-1"}},

		{"/nix/var/nix/b/2xv8kq/build", BuildDir{}}, // Lix has no build/
		// Lix 2.92.2, 2.93.1: nested b/, the note names the top.
		{"/nix/var/nix/builds/nix-build-hello.drv-0/b", BuildDir{"/nix/var/nix/builds/nix-build-hello.drv-0", LayoutNamed, "b", "hello"}},
		{"/nix/var/nix/builds/nix-1-2/b", BuildDir{}}, // Nix has no b/
		{"/tmp/nix-build-hello.drv-0/source", BuildDir{}},
		{"/tmp/nix-build-a.drv-0/build/nix-build-nested.drv-0/build/x", BuildDir{}},
		{"/tmp/nix-build-hello.drv-", BuildDir{}},
		{"/tmp/nix-build-.drv-0", BuildDir{}},
		{"/tmp/nix-build-hello.drv-0-", BuildDir{}},
		{"/tmp/nix-build-hello", BuildDir{}},
		{"/tmp/nix-12", BuildDir{}},
		{"/tmp/nix-shell-1-2", BuildDir{}},
		{"/tmp/build", BuildDir{}},
		{"/nix/var/nix/b", BuildDir{}},
		{"/b", BuildDir{}},
		{"b", BuildDir{}},
		{"/", BuildDir{}},
		{"", BuildDir{}},
		{".", BuildDir{}},
	}
	for _, tt := range tests {
		got, ok := ParseBuildDir(tt.in)
		if ok != (tt.want.Top != "") || got != tt.want {
			t.Errorf("ParseBuildDir(%q) = %+v, %v; want %+v", tt.in, got, ok, tt.want)
		}
	}
}

// TestLayoutInner: every layout says where /build is, and FindBuildDir
// tries all of those places.
func TestLayoutInner(t *testing.T) {
	for l := LayoutNamed; l <= LayoutLix; l++ {
		if len(l.Inner()) == 0 || l.String() == "unknown" {
			t.Errorf("layout %d: Inner %q, String %q", l, l.Inner(), l)
		}
		for _, in := range l.Inner() {
			if !slices.Contains(innerAny, in) {
				t.Errorf("%s: FindBuildDir does not try %q", l, in)
			}
		}
	}
	if LayoutUnknown.Inner() != nil {
		t.Errorf("LayoutUnknown.Inner() = %q", LayoutUnknown.Inner())
	}
}

func FuzzParseBuildDir(f *testing.F) {
	for _, s := range []string{
		"/tmp/nix-build-hello-2.12.drv-0", "/tmp/nix-build-hello.drv-12/build",
		"/nix/var/nix/builds/nix-build-hello.drv-1234-5/build", "/nix/var/nix/builds/nix-1234-99/build",
		"/nix/var/nix/b/2xv8kq/b", "b/b/b", "nix-build-.drv-0", "//", "../b/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		b, ok := ParseBuildDir(p)
		if !ok {
			if b != (BuildDir{}) {
				t.Fatalf("not recognised but %+v", b)
			}
			return
		}
		if b.Layout == LayoutUnknown || b.Top == "" {
			t.Fatalf("recognised without a layout or top: %+v", b)
		}
		if (b.Name != "") != (b.Layout == LayoutNamed || b.Layout == LayoutNamedPID) {
			t.Fatalf("name %q for layout %s", b.Name, b.Layout)
		}
		if !slices.Contains(append([]string{"."}, b.Layout.Inner()...), b.In) {
			t.Fatalf("In %q not a place of %s", b.In, b.Layout)
		}
		if got := path.Join(b.Top, b.In); got != path.Clean(p) {
			t.Fatalf("Top %q + In %q = %q, not the path %q", b.Top, b.In, got, path.Clean(p))
		}
		// The top is recognised as itself, and the build's own
		// directory inside it too (as that, or as a top of its own
		// where Lix's ID is b: b/b/b).
		top, ok := ParseBuildDir(b.Top)
		if !ok || top.Top != b.Top || top.In != "." || top.Name != b.Name || top.Layout != b.Layout {
			t.Fatalf("top %q parses as %+v, %v; from %+v", b.Top, top, ok, b)
		}
		for _, in := range b.Layout.Inner() {
			if in == "." {
				continue
			}
			p := path.Join(b.Top, in)
			if c, ok := ParseBuildDir(p); !ok || path.Join(c.Top, c.In) != p {
				t.Fatalf("%s/%s parses as %+v, %v", b.Top, in, c, ok)
			}
		}
	})
}

func TestBuildDirPID(t *testing.T) {
	for in, want := range map[string]int{
		"/nix/var/nix/builds/nix-1234-99/build":                      1234,
		"/nix/var/nix/builds/nix-build-hello.drv-1234-5":             1234,
		"/nix/var/nix/builds/nix-build-a-1.drv-2-3":                  2,
		"/tmp/nix-build-hello.drv-0":                                 0,
		"/nix/var/nix/b/2xv8kq/b":                                    0,
		"/nix/var/nix/builds/nix-99999999999999999999999999-1/build": 0,
	} {
		b, ok := ParseBuildDir(in)
		if !ok {
			t.Fatalf("ParseBuildDir(%q) failed", in)
		}
		if got := b.PID(); got != want {
			t.Errorf("PID of %s = %d; want %d", in, got, want)
		}
	}
}
