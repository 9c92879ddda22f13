package diff

// OpKind says what an Op does.
type OpKind byte

// The kinds of Op.
const (
	Equal  OpKind = '='
	Delete OpKind = '-'
	Insert OpKind = '+'
)

// Op is one run of an edit script: N lines kept, deleted from a or
// inserted from b.
type Op struct {
	Kind OpKind
	N    int
}

// Lines returns a shortest edit script that turns a into b.
func Lines(a, b []string) []Op {
	// Compare numbers, not strings: each distinct line gets one.
	ids := map[string]int{}
	num := func(ls []string) []int {
		out := make([]int, len(ls))
		for i, l := range ls {
			id, ok := ids[l]
			if !ok {
				id = len(ids)
				ids[l] = id
			}
			out[i] = id
		}
		return out
	}
	m := &myers{}
	m.diff(num(a), num(b))
	return m.ops
}

type myers struct {
	ops    []Op
	v1, v2 []int // scratch for bisect, reused
}

func (m *myers) add(k OpKind, n int) {
	if n == 0 {
		return
	}
	if l := len(m.ops); l > 0 && m.ops[l-1].Kind == k {
		m.ops[l-1].N += n
		return
	}
	m.ops = append(m.ops, Op{k, n})
}

// diff appends to m.ops a shortest edit script from a to b.
func (m *myers) diff(a, b []int) {
	// Common prefix and suffix cost nothing to find and are most of
	// what a build directory's edits leave alone.
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		p++
	}
	m.add(Equal, p)
	a, b = a[p:], b[p:]
	s := 0
	for s < len(a) && s < len(b) && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	a, b = a[:len(a)-s], b[:len(b)-s]
	switch {
	case len(a) == 0:
		m.add(Insert, len(b))
	case len(b) == 0:
		m.add(Delete, len(a))
	default:
		x, y := m.bisect(a, b)
		if (x == 0 && y == 0) || (x == len(a) && y == len(b)) {
			// Cannot happen (a and b differ at both ends); never
			// recurse on the same problem.
			m.add(Delete, len(a))
			m.add(Insert, len(b))
			break
		}
		m.diff(a[:x], b[:y])
		m.diff(a[x:], b[y:])
	}
	m.add(Equal, s)
}

// bisect finds the middle snake of a shortest path from (0,0) to
// (len(a),len(b)) — searching forward from the start and backward from
// the end at once — and returns a point of it, which lies on a shortest
// path: the problem splits there into two smaller ones. Unlike the
// paper's pseudo-code it never lets a path leave the grid, so the
// furthest points it keeps are ones a path can reach.
func (m *myers) bisect(a, b []int) (int, int) {
	n, mm := len(a), len(b)
	maxD := (n + mm + 1) / 2
	off := maxD + 1
	size := 2*maxD + 3
	if cap(m.v1) < size {
		m.v1, m.v2 = make([]int, size), make([]int, size)
	}
	// vf[off+k]: the furthest x a forward path of d edits reaches on
	// diagonal k = x-y; vr[off+k]: the same for the reverse path in
	// coordinates counted from the end (x' = n-x, y' = m-y). -1: none.
	vf, vr := m.v1[:size], m.v2[:size]
	delta := n - mm
	odd := delta%2 != 0
	// furthest extends the (d-1)-paths on diagonals k±1 by one edit and
	// the snake after it; eq compares a and b at (x, y) in v's direction.
	furthest := func(v []int, d, k int, eq func(x, y int) bool) int {
		x := -1
		if d == 0 {
			x = 0
		} else {
			if k < d && v[off+k+1] >= 0 && v[off+k+1]-k <= mm { // down: y+1
				x = v[off+k+1]
			}
			if k > -d && v[off+k-1] >= 0 && v[off+k-1]+1 <= n && v[off+k-1]+1 > x { // right: x+1
				x = v[off+k-1] + 1
			}
			if x < 0 || x-k < 0 {
				return -1
			}
		}
		for y := x - k; x < n && y < mm && eq(x, y); y++ {
			x++
		}
		return x
	}
	fwd := func(x, y int) bool { return a[x] == b[y] }
	rev := func(x, y int) bool { return a[n-1-x] == b[mm-1-y] }
	for d := 0; d <= maxD; d++ {
		for k := -d; k <= d; k += 2 {
			x := furthest(vf, d, k, fwd)
			vf[off+k] = x
			// Odd delta: the forward path may now overlap a reverse
			// path of d-1 edits on the same diagonal; its last snake is
			// then the middle snake.
			if rk := delta - k; x >= 0 && odd && rk >= -(d-1) && rk <= d-1 && vr[off+rk] >= 0 && x+vr[off+rk] >= n {
				return x, x - k
			}
		}
		for k := -d; k <= d; k += 2 {
			x := furthest(vr, d, k, rev)
			vr[off+k] = x
			// Even delta: the reverse path may overlap a forward path of
			// d edits; its last snake is then the middle snake.
			if fk := delta - k; x >= 0 && !odd && fk >= -d && fk <= d && vf[off+fk] >= 0 && vf[off+fk]+x >= n {
				return n - x, mm - (x - k)
			}
		}
	}
	// Not reached: the two searches always meet by d = maxD.
	return 0, 0
}
