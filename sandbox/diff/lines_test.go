package diff

import (
	"math/rand"
	"strings"
	"testing"
)

// apply runs the edit script on a, taking inserted lines from b, and
// checks that it consumes both exactly.
func apply(t *testing.T, a, b []string, ops []Op) []string {
	t.Helper()
	var out []string
	ai, bi := 0, 0
	for _, op := range ops {
		if op.N <= 0 {
			t.Fatalf("empty op %+v in %v", op, ops)
		}
		switch op.Kind {
		case Equal:
			for range op.N {
				if ai >= len(a) || bi >= len(b) || a[ai] != b[bi] {
					t.Fatalf("Equal op at a[%d], b[%d] does not match: %v", ai, bi, ops)
				}
				out = append(out, a[ai])
				ai++
				bi++
			}
		case Delete:
			ai += op.N
		case Insert:
			out = append(out, b[bi:bi+op.N]...)
			bi += op.N
		}
	}
	if ai != len(a) || bi != len(b) {
		t.Fatalf("script ends at a[%d], b[%d] of %d, %d: %v", ai, bi, len(a), len(b), ops)
	}
	return out
}

// lcs is the length of a longest common subsequence, by dynamic
// programming: a shortest edit script has len(a)+len(b)-2*lcs edits.
func lcs(a, b []string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			switch {
			case a[i] == b[j]:
				cur[j+1] = prev[j] + 1
			case prev[j+1] > cur[j]:
				cur[j+1] = prev[j+1]
			default:
				cur[j+1] = cur[j]
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func edits(ops []Op) int {
	n := 0
	for _, op := range ops {
		if op.Kind != Equal {
			n += op.N
		}
	}
	return n
}

func checkLines(t *testing.T, a, b []string) {
	t.Helper()
	ops := Lines(a, b)
	if got := apply(t, a, b, ops); strings.Join(got, "\n") != strings.Join(b, "\n") || len(got) != len(b) {
		t.Fatalf("Lines(%q, %q) = %v does not turn a into b", a, b, ops)
	}
	if want := len(a) + len(b) - 2*lcs(a, b); edits(ops) != want {
		t.Fatalf("Lines(%q, %q) = %v: %d edits, a shortest script has %d", a, b, ops, edits(ops), want)
	}
	for i := 1; i < len(ops); i++ {
		if ops[i].Kind == ops[i-1].Kind {
			t.Fatalf("Lines(%q, %q) = %v: adjacent ops of one kind", a, b, ops)
		}
	}
}

func TestLines(t *testing.T) {
	cases := []struct{ a, b string }{
		{"", ""},
		{"a", ""},
		{"", "a"},
		{"a", "a"},
		{"a", "b"},
		{"abc", "abc"},
		{"abcabba", "cbabac"}, // the paper's example, D = 5
		{"abc", "xyz"},
		{"aaaa", "aa"},
		{"ab", "ba"},
		{"abcdef", "abXdef"},
		{"xabcdefy", "abcdef"},
		{"abababab", "babababa"},
	}
	for _, c := range cases {
		checkLines(t, strings.Split(c.a, ""), strings.Split(c.b, ""))
	}
}

func TestLinesRandom(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	gen := func(n, alpha int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = string(rune('a' + r.Intn(alpha)))
		}
		return s
	}
	for i := 0; i < 20000; i++ {
		alpha := 1 + r.Intn(5)
		a := gen(r.Intn(14), alpha)
		b := gen(r.Intn(14), alpha)
		if r.Intn(3) == 0 {
			// Mostly equal, as edited files are.
			b = append(append(append([]string{}, a[:len(a)/2]...), gen(r.Intn(3), alpha)...), a[len(a)/2:]...)
		}
		checkLines(t, a, b)
	}
}

// TestLinesLarge: a big file with scattered edits is diffed fast and in
// little memory (the linear-space form), and the script is still
// shortest.
func TestLinesLarge(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	a := make([]string, 20000)
	for i := range a {
		a[i] = string(rune('a'+r.Intn(26))) + string(rune('a'+r.Intn(26))) + string(rune('a'+r.Intn(26)))
	}
	b := append([]string{}, a...)
	for i := 0; i < 300; i++ {
		j := r.Intn(len(b))
		switch r.Intn(3) {
		case 0:
			b[j] = "changed"
		case 1:
			b = append(b[:j], b[j+1:]...)
		default:
			b = append(b[:j], append([]string{"inserted"}, b[j:]...)...)
		}
	}
	ops := Lines(a, b)
	apply(t, a, b, ops)
	if e, max := edits(ops), 600; e > max {
		t.Errorf("%d edits for 300 line changes", e)
	}
}

func FuzzLines(f *testing.F) {
	f.Add("abcabba", "cbabac")
	f.Add("", "x")
	f.Add("aaaa", "aaab")
	f.Fuzz(func(t *testing.T, sa, sb string) {
		if len(sa) > 64 || len(sb) > 64 {
			return
		}
		checkLines(t, strings.Split(sa, ""), strings.Split(sb, ""))
	})
}
