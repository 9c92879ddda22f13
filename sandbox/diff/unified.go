package diff

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Context is the number of unchanged lines around each change, as in
// diff -u.
const Context = 3

// binarySniff is how much of a file IsBinary looks at: git's choice.
const binarySniff = 8000

// IsBinary reports whether data looks like a binary file: a NUL byte in
// its first 8000 bytes, the test git and GNU diff use.
func IsBinary(data []byte) bool {
	return bytes.IndexByte(data[:min(len(data), binarySniff)], 0) >= 0
}

// SplitLines splits data after each newline; the last line has none when
// the file does not end in one.
func SplitLines(data string) []string {
	if data == "" {
		return nil
	}
	ls := strings.SplitAfter(data, "\n")
	if ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	return ls
}

// Unified writes the unified diff (diff -u) that turns old into new,
// under the names oldName and newName ("/dev/null" for a file that does
// not exist on that side), and reports whether they differ. Equal inputs
// write nothing.
func Unified(w io.Writer, oldName, newName string, old, new []byte) (bool, error) {
	a, b := SplitLines(string(old)), SplitLines(string(new))
	ops := Lines(a, b)
	if len(ops) == 0 || (len(ops) == 1 && ops[0].Kind == Equal) {
		return false, nil
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "--- %s\n+++ %s\n", oldName, newName)
	for _, h := range hunks(ops) {
		writeHunk(&buf, h, a, b)
	}
	_, err := w.Write(buf.Bytes())
	return true, err
}

// hunk is a stretch of the edit script with its context: lines
// a[a0:a1] become b[b0:b1], as ops say.
type hunk struct {
	a0, a1, b0, b1 int
	ops            []Op
}

// hunks groups the edit script into hunks, merging changes that are
// at most 2*Context unchanged lines apart, as diff -u does.
func hunks(ops []Op) []hunk {
	var hs []hunk
	var cur *hunk
	ai, bi := 0, 0
	for i, op := range ops {
		switch op.Kind {
		case Equal:
			last := i == len(ops)-1
			if cur != nil && (op.N > 2*Context || last) {
				// Close the hunk with Context lines of this run.
				n := min(op.N, Context)
				cur.ops = append(cur.ops, Op{Equal, n})
				cur.a1 += n
				cur.b1 += n
				hs = append(hs, *cur)
				cur = nil
			} else if cur != nil {
				cur.ops = append(cur.ops, op)
				cur.a1 += op.N
				cur.b1 += op.N
			}
			ai += op.N
			bi += op.N
		default:
			if cur == nil {
				// Open a hunk with up to Context lines before it.
				n := 0
				if i > 0 && ops[i-1].Kind == Equal {
					n = min(ops[i-1].N, Context)
				}
				cur = &hunk{a0: ai - n, a1: ai, b0: bi - n, b1: bi}
				if n > 0 {
					cur.ops = append(cur.ops, Op{Equal, n})
				}
			}
			cur.ops = append(cur.ops, op)
			if op.Kind == Delete {
				ai += op.N
				cur.a1 += op.N
			} else {
				bi += op.N
				cur.b1 += op.N
			}
		}
	}
	if cur != nil {
		hs = append(hs, *cur)
	}
	return hs
}

// hunkRange is GNU diff's: "start,count" with start 1-based, the line
// before an empty range, and ",1" left out.
func hunkRange(lo, hi int) string {
	switch n := hi - lo; n {
	case 0:
		return fmt.Sprintf("%d,0", lo)
	case 1:
		return fmt.Sprintf("%d", lo+1)
	default:
		return fmt.Sprintf("%d,%d", lo+1, n)
	}
}

func writeHunk(buf *bytes.Buffer, h hunk, a, b []string) {
	fmt.Fprintf(buf, "@@ -%s +%s @@\n", hunkRange(h.a0, h.a1), hunkRange(h.b0, h.b1))
	line := func(prefix byte, l string) {
		buf.WriteByte(prefix)
		buf.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			buf.WriteString("\n\\ No newline at end of file\n")
		}
	}
	ai, bi := h.a0, h.b0
	for _, op := range h.ops {
		for range op.N {
			switch op.Kind {
			case Equal:
				line(' ', a[ai])
				ai++
				bi++
			case Delete:
				line('-', a[ai])
				ai++
			case Insert:
				line('+', b[bi])
				bi++
			}
		}
	}
}
