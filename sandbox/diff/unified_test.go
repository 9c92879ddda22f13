package diff

import (
	"bytes"
	"flag"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestUnified(t *testing.T) {
	cases := []struct {
		name     string
		old, new string
		want     string
	}{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"one line", "a\nb\nc\n", "a\nB\nc\n", "--- o\n+++ n\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"},
		{"new file", "", "x\ny\n", "--- o\n+++ n\n@@ -0,0 +1,2 @@\n+x\n+y\n"},
		{"deleted file", "x\n", "", "--- o\n+++ n\n@@ -1 +0,0 @@\n-x\n"},
		{"no newline", "a\nb", "a\nb\n", "--- o\n+++ n\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"},
		{"insert after line 5", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\n5\nnew\n6\n7\n8\n9\n",
			"--- o\n+++ n\n@@ -3,6 +3,7 @@\n 3\n 4\n 5\n+new\n 6\n 7\n 8\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "X\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\nY\n",
			"--- o\n+++ n\n@@ -1,4 +1,4 @@\n-1\n+X\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+Y\n"},
		{"merged hunks", "1\n2\n3\n4\n5\n6\n7\n8\n", "X\n2\n3\n4\n5\n6\n7\nY\n",
			"--- o\n+++ n\n@@ -1,8 +1,8 @@\n-1\n+X\n 2\n 3\n 4\n 5\n 6\n 7\n-8\n+Y\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			differ, err := Unified(&b, "o", "n", []byte(c.old), []byte(c.new))
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != c.want || differ != (c.want != "") {
				t.Errorf("got (differ %v)\n%s\nwant\n%s", differ, b.String(), c.want)
			}
		})
	}
}

// TestUnifiedAgainstDiff: where GNU diff is installed, our hunks for
// single, well-separated edits are byte for byte what diff -u prints.
func TestUnifiedAgainstDiff(t *testing.T) {
	if _, err := exec.LookPath("diff"); err != nil {
		t.Skip("SKIPPED: diff (GNU diffutils) not installed")
	}
	dir := t.TempDir()
	var lines []string
	for i := range 40 {
		lines = append(lines, strings.Repeat(string(rune('a'+i%26)), 1+i%5))
	}
	old := strings.Join(lines, "\n") + "\n"
	edits := map[string]string{
		"change":        strings.Replace(old, "\nccc\n", "\nCCC\n", 1),
		"delete":        strings.Replace(old, "\nkk\n", "\n", 1),
		"insert":        strings.Replace(old, "\nmmmm\n", "\nmmmm\ninserted\n", 1),
		"first and end": "first\n" + old + "last\n",
		"no newline":    strings.TrimSuffix(old, "\n"),
	}
	os.WriteFile(filepath.Join(dir, "old"), []byte(old), 0o644)
	for name, new := range edits {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "new"), []byte(new), 0o644)
			cmd := exec.Command("diff", "-u", "--label", "o", "--label", "n", "old", "new")
			cmd.Dir = dir
			want, _ := cmd.Output()
			var got bytes.Buffer
			Unified(&got, "o", "n", []byte(old), []byte(new))
			if got.String() != string(want) {
				t.Errorf("got\n%s\ndiff -u says\n%s", got.String(), want)
			}
		})
	}
}

// TestUnifiedPatch: patch(1) turns old into new with what Unified
// writes, for random edits of random files.
func TestUnifiedPatch(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("SKIPPED: patch not installed")
	}
	r := rand.New(rand.NewSource(3))
	dir := t.TempDir()
	for i := range 200 {
		var a []string
		for range r.Intn(60) {
			a = append(a, string(rune('a'+r.Intn(4)))+"\n")
		}
		b := append([]string{}, a...)
		for range 1 + r.Intn(6) {
			j := r.Intn(len(b) + 1)
			switch r.Intn(3) {
			case 0:
				if j < len(b) {
					b = append(b[:j], b[j+1:]...)
				}
			default:
				b = append(b[:j], append([]string{string(rune('a'+r.Intn(6))) + "\n"}, b[j:]...)...)
			}
		}
		old, new := strings.Join(a, ""), strings.Join(b, "")
		if r.Intn(4) == 0 && len(new) > 0 {
			new = strings.TrimSuffix(new, "\n")
		}
		var p bytes.Buffer
		differ, err := Unified(&p, "a/f", "b/f", []byte(old), []byte(new))
		if err != nil {
			t.Fatal(err)
		}
		if !differ {
			if old != new {
				t.Fatalf("case %d: no diff for different files", i)
			}
			continue
		}
		f := filepath.Join(dir, "f")
		os.WriteFile(f, []byte(old), 0o644)
		cmd := exec.Command("patch", "--quiet", "--force", "--posix", f)
		cmd.Stdin = &p
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("case %d: patch: %v\n%s\nold %q\nnew %q\npatch:\n%s", i, err, out, old, new, p.String())
		}
		got, _ := os.ReadFile(f)
		if string(got) != new {
			t.Fatalf("case %d: patched file %q, want %q\npatch:\n%s", i, got, new, p.String())
		}
	}
}

func TestIsBinary(t *testing.T) {
	if IsBinary([]byte("text\n")) || !IsBinary([]byte("a\x00b")) || IsBinary(nil) {
		t.Error("IsBinary misjudges")
	}
	late := append(bytes.Repeat([]byte("x"), binarySniff), 0)
	if IsBinary(late) {
		t.Error("a NUL past the first 8000 bytes counts, git's test does not look there")
	}
}
