package wrapper

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

// TestWatcherLayouts: the watcher takes the tops of every layout
// nix.ParseBuildDir knows, Lix's in a root called b whatever their name,
// and nothing else.
func TestWatcherLayouts(t *testing.T) {
	root := t.TempDir()
	tmp, lix := filepath.Join(root, "tmp"), filepath.Join(root, "b")
	for _, d := range []string{tmp, lix} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	wa := startWatch([]string{tmp, lix}, discard)
	want := []string{
		filepath.Join(tmp, "nix-build-a.drv-0"),
		filepath.Join(tmp, "nix-build-b.drv-1234-5"),
		filepath.Join(tmp, "nix-1234-6"),
		filepath.Join(lix, "0f3kq8"),
	}
	for _, d := range append(want, filepath.Join(tmp, "nix-build-x"), filepath.Join(tmp, "nix-shell-1-2"), filepath.Join(tmp, "b")) {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got := wa.stop()
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("watcher saw %q, want %q", got, want)
	}
}

// TestCrossCheckLayouts: a failure without a note gets the new top of
// its own name (2.30.0–2.31.1) or, nameless, the one whose env-vars
// names it, Lix's b/ID included, named the way Lix's note would.
func TestCrossCheckLayouts(t *testing.T) {
	root := t.TempDir()
	mk := func(rel, name string) string { return mkBuildDir(t, filepath.Join(root, rel), name) }
	const (
		foo = "/nix/store/00000000000000000000000000000000-foo.drv"
		bar = "/nix/store/11111111111111111111111111111111-bar.drv"
		baz = "/nix/store/22222222222222222222222222222222-baz.drv"
	)
	fooDir := mk("builds/nix-build-foo.drv-12-3/build", "")
	mk("b/0aaa/b", "other")
	barTop := filepath.Dir(mk("b/0bbb/b", "bar"))
	bazDir := mk("builds/nix-12-4/build", "baz")
	created := []string{filepath.Dir(fooDir), filepath.Join(root, "b/0aaa"), barTop, filepath.Dir(bazDir)}
	fails := []Failure{{Drv: foo, ExitCode: 1}, {Drv: bar, ExitCode: 2}, {Drv: baz, ExitCode: 3}}
	crossCheck(fails, created, discard)
	for i, want := range []string{fooDir, barTop, bazDir} {
		if fails[i].KeptDir != want {
			t.Errorf("%s: KeptDir %q, want %q", fails[i].Drv, fails[i].KeptDir, want)
		}
	}

	// Lix notes crossed by a parallel build are swapped back by the
	// env-vars in b/.
	dirFoo, dirBar := filepath.Dir(mk("b/1aaa/b", "foo")), filepath.Dir(mk("b/1bbb/b", "bar"))
	fails = []Failure{{Drv: foo, KeptDir: dirBar}, {Drv: bar, KeptDir: dirFoo}}
	crossCheck(fails, nil, discard)
	if fails[0].KeptDir != dirFoo || fails[1].KeptDir != dirBar {
		t.Errorf("not swapped: %+v", fails)
	}
}

// mkBuildDir creates the directory d, with an env-vars naming name
// unless name is "".
func mkBuildDir(t *testing.T, d, name string) string {
	t.Helper()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if name != "" {
		if err := os.WriteFile(filepath.Join(d, "env-vars"), []byte("declare -x name=\""+name+"\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}
