package diff

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// edits are what a session might do to /build; applied to a full copy
// and through an overlay, both must give the same changes.
func overlayEdits(d string) {
	os.WriteFile(filepath.Join(d, "src/main.c"), []byte("int main() {\n\treturn 0;\n}\n"), 0o644)
	os.Remove(filepath.Join(d, "src/gone.txt"))
	os.RemoveAll(filepath.Join(d, "src/olddir"))
	os.RemoveAll(filepath.Join(d, "src/dir"))
	os.MkdirAll(filepath.Join(d, "src/dir"), 0o755)
	os.WriteFile(filepath.Join(d, "src/dir/fresh.txt"), []byte("fresh\n"), 0o644)
	os.Remove(filepath.Join(d, "src/becomes-dir"))
	os.MkdirAll(filepath.Join(d, "src/becomes-dir/x"), 0o755)
	os.Chmod(filepath.Join(d, "src/mode.sh"), 0o755)
	os.Remove(filepath.Join(d, "src/link"))
	os.Symlink("README", filepath.Join(d, "src/link"))
	os.WriteFile(filepath.Join(d, "added.txt"), []byte("new\n"), 0o644)
	os.Mkdir(filepath.Join(d, "newdir"), 0o700)
	os.WriteFile(filepath.Join(d, "newdir/f"), []byte("f\n"), 0o644)
	// Copied up, unchanged.
	f, _ := os.OpenFile(filepath.Join(d, "src/touched"), os.O_WRONLY|os.O_APPEND, 0)
	f.Close()
	os.Chtimes(filepath.Join(d, "src/README"), time.Now(), time.Now())
}

// TestOverlayKernel: the changes read from a kernel overlay's upper
// directory are those Trees finds in a full copy given the same edits.
func TestOverlayKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting an overlay needs root")
	}
	old, copy := makeTrees(t, overlayEdits)
	want, err := Trees(old, copy, Options{})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	upper, work, view := filepath.Join(root, "upper"), filepath.Join(root, "work"), filepath.Join(root, "view")
	for _, d := range []string{upper, work, view} {
		os.Mkdir(d, 0o755)
	}
	if err := unix.Mount("overlay", view, "overlay", 0, "lowerdir="+old+",upperdir="+upper+",workdir="+work+",userxattr"); err != nil {
		t.Skipf("mount overlay: %v", err)
	}
	overlayEdits(view)
	if err := unix.Unmount(view, 0); err != nil {
		t.Fatal(err)
	}
	got, err := Overlay(old, upper, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(changeKeys(got), changeKeys(want)) {
		t.Errorf("Overlay:\n%v\nTrees of a copy:\n%v", changeKeys(got), changeKeys(want))
	}
	if s := Summarize(got); s != Summarize(want) {
		t.Errorf("summary %v, want %v", s, Summarize(want))
	}
}

// TestOverlayFuseFormat: fuse-overlayfs's whiteout files and opaque
// marker read as deletions and as a directory replaced whole.
func TestOverlayFuseFormat(t *testing.T) {
	old, _ := makeTrees(t, func(string) {})
	upper := t.TempDir()
	os.MkdirAll(filepath.Join(upper, "src/dir"), 0o755)
	os.WriteFile(filepath.Join(upper, "src/.wh.gone.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(upper, "src/.wh.olddir"), nil, 0o644)
	os.WriteFile(filepath.Join(upper, "src/dir/.wh..wh..opq"), nil, 0o644)
	os.WriteFile(filepath.Join(upper, "src/dir/fresh.txt"), []byte("fresh\n"), 0o644)
	got, err := Overlay(old, upper, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"D src/dir/deep.txt", "A src/dir/fresh.txt", "D src/gone.txt", "D src/olddir", "D src/olddir/x"}
	if !reflect.DeepEqual(changeKeys(got), want) {
		t.Errorf("got %v, want %v", changeKeys(got), want)
	}
}

// TestOverlayUntouched: nothing in upper, nothing changed.
func TestOverlayUntouched(t *testing.T) {
	old, _ := makeTrees(t, func(string) {})
	got, err := Overlay(old, t.TempDir(), Options{})
	if err != nil || len(got) != 0 {
		t.Errorf("got %v, %v", got, err)
	}
}

func changeKeys(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c.Kind)+" "+c.Path)
	}
	return out
}

// TestOverlayOverStack: changes over kept changes (a stack of an upper
// directory on the kept directory) are compared with the merged view:
// what the lower upper deleted is not there, what it added is.
func TestOverlayOverStack(t *testing.T) {
	old, _ := makeTrees(t, func(string) {})
	first := t.TempDir()
	os.MkdirAll(filepath.Join(first, "src/dir"), 0o755)
	os.WriteFile(filepath.Join(first, "src/.wh.gone.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(first, "src/dir/.wh..wh..opq"), nil, 0o644)
	os.WriteFile(filepath.Join(first, "src/dir/fresh.txt"), []byte("fresh\n"), 0o644)
	os.WriteFile(filepath.Join(first, "added.txt"), []byte("new\n"), 0o644)
	lower := Stack{first, old}
	names, err := lower.names("src/dir")
	if err != nil || !reflect.DeepEqual(names, []string{"fresh.txt"}) {
		t.Errorf("merged src/dir = %v, %v; want only fresh.txt (opaque)", names, err)
	}
	if _, err := lower.lstat("src/gone.txt"); err == nil {
		t.Errorf("a whiteout in the upper layer does not hide src/gone.txt")
	}
	second := t.TempDir()
	os.MkdirAll(filepath.Join(second, "src"), 0o755)
	os.WriteFile(filepath.Join(second, ".wh.added.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(second, "src/dir/.wh.fresh.txt"), nil, 0o644)
	os.MkdirAll(filepath.Join(second, "src/dir"), 0o755)
	os.WriteFile(filepath.Join(second, "src/dir/.wh.fresh.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(second, "src/gone.txt"), []byte("back\n"), 0o644)
	got, err := OverlayOver(lower, second, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"D added.txt", "D src/dir/fresh.txt", "A src/gone.txt"}
	if !reflect.DeepEqual(changeKeys(got), want) {
		t.Errorf("got %v, want %v", changeKeys(got), want)
	}
}
