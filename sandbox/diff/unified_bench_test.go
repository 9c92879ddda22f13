package diff

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// edited changes every 7th line of s, deletes every 23rd and inserts one
// after every 31st: scattered edits, as a build leaves in its sources.
func edited(s string) string {
	var out strings.Builder
	for i, l := range SplitLines(s) {
		switch {
		case i%23 == 5:
		case i%7 == 3:
			out.WriteString("changed " + l)
		default:
			out.WriteString(l)
		}
		if i%31 == 30 {
			out.WriteString("inserted\n")
		}
	}
	return out.String()
}

// BenchmarkUnified diffs this package's own sources against edited
// copies: a few files of some hundred lines each.
func BenchmarkUnified(b *testing.B) {
	files, _ := filepath.Glob("*.go")
	var olds, news [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		olds = append(olds, data)
		news = append(news, []byte(edited(string(data))))
	}
	b.ResetTimer()
	for range b.N {
		for i := range olds {
			Unified(io.Discard, "a", "b", olds[i], news[i])
		}
	}
}
