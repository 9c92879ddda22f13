package wrapper

import (
	"sort"
	"strconv"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
)

// Failure is one failed derivation as the log reports it.
type Failure struct {
	Drv      string // /nix/store/…-name.drv
	KeptDir  string // as the note names it ("" when no note was seen)
	Builder  string // "" for a local build, else the remote builder URI as printed (ssh://host, ssh-ng://host?…)
	ExitCode int    // the builder's exit code when printed, else -1
	// KeptRemote is set when Nix (2.30+) warned that the failed build
	// directory was kept on the remote builder, whether or not a note
	// named it.
	KeptRemote bool
}

// Scanner reads a nix-build or `nix build` log (stderr) line by line and
// collects the failed derivations, where their build directories were
// kept, and on which builder they ran.
//
// What the real logs look like (testdata/ has them; Nix 2.8 measured, 2.34
// from the source):
//
//   - Without --keep-going the note comes right before the failure line.
//   - With --keep-going every note is printed when its build fails, but the
//     failure lines of the top-level derivations only when all builds are
//     over, in another order (Nix prints them from its set of goals).
//     `nix build --keep-going` (2.8) even leaves some failures without any
//     failure line: the note is then the only trace.
//   - Remote builds over ssh:// can print the failure line before the
//     note, because the builder's log and the hook's messages come through
//     different pipes; the hook's own failure ("builder for … failed with
//     exit code 1") follows, and its exit code is not the builder's.
//   - With a terminal, `nix build` draws a progress bar: lines start with
//     "\r" and a status, carry colour codes (also inside the quotes around
//     store paths), and there are no "building '…'" lines at all.
//   - With -L, builder output is prefixed "NAME> "; the note is printed by
//     Nix itself and is not, except for ssh:// remote builds, where the
//     remote note is part of the builder's log.
//
// So a note is tied to its derivation by name: the name in the directory
// (nix-build-NAME.drv-N, up to Nix 2.29 and in 2.30.0–2.31.1) or the -L
// prefix. The 2.30+ names (nix-PID-N) carry no name: such a note goes to
// the build whose output or progress was seen last, else to the derivation
// whose "building" line came last, else to the next failure line that has
// no note. Run cross-checks these with the env-vars files on disk.
//
// A Scanner is not safe for concurrent use.
type Scanner struct {
	seq    int
	builds []building         // "building '…'" lines, in order
	remote map[string]string  // drv → builder URI (sticky)
	fails  map[string]*failed // failure lines by drv
	notes  []note

	hintName string    // build whose -L output or progress status was seen last
	hintSeq  int       // line of hintName
	cannot   *cannotAt // "Cannot build '…'." waiting for its "Reason:" line
	warned   bool      // 2.30+ remote keep warning waiting for its failure line

	// Write state: the current segment (since the last \r or \n), and the
	// last two segments with something visible before it (what Line needs
	// of the \r-separated parts: the line and its progress status).
	buf  []byte
	prev [2][]byte
	cr   bool
}

type building struct {
	drv string
	seq int
}

type failed struct {
	seq        int // first failure line
	exit       int
	keptRemote bool
}

type note struct {
	dir     string
	seq     int
	prefix  string // NAME of a "NAME> " prefix on the note line
	dirName string // NAME from nix-build-NAME.drv-N (buildDirName)
	hint    string // build seen last (output or status) when the note came
	// last is the derivation whose "building" line came last, when no
	// build output or status was seen after it.
	last string
}

type cannotAt struct {
	drv    string
	remote bool // inside "build of '…' on '…' failed: …": the builder's own message
}

// maxLine bounds the bytes Write keeps for one line; Nix's own lines are
// short, and a longer builder line is cut.
const maxLine = 64 << 10

// NewScanner returns an empty Scanner.
func NewScanner() *Scanner {
	return &Scanner{remote: map[string]string{}, fails: map[string]*failed{}}
}

var (
	// A store path in quotes, as Nix prints derivations.
	drvRe = `'(/[^'\s]*\.drv)'`

	reBuilding = nix.LazyRegexp(`^(?:building|checking outputs of|repairing outputs of) ` + drvRe + `(?: on '(.*)')?\.\.\.$`)
	// ≤2.28, and inside remote failures: also "failed due to signal N",
	// "failed to produce output path …".
	reBuilderFor = nix.LazyRegexp(`^builder for ` + drvRe + ` failed(?: with exit code (\d+))?`)
	reCannot     = nix.LazyRegexp(`^Cannot build ` + drvRe + `\.$`)
	reReason     = nix.LazyRegexp(`^Reason: builder failed(?: with exit code (\d+))?`)
	reRemote     = nix.LazyRegexp(`^build of ` + drvRe + ` on '(.*?)' failed(?:: (.*))?$`)
	reHash       = nix.LazyRegexp(`^hash mismatch in fixed-output derivation ` + drvRe)
	rePrefix     = nix.LazyRegexp(`^([A-Za-z0-9+._?=-]+)> (.*)$`)
	reStatus     = nix.LazyRegexp(`\] building ([A-Za-z0-9+._?=-]+)`)
)

const (
	notePrefix = "note: keeping build directory "
	remoteKept = "The failed build directory was kept on the remote builder"
)

// Write feeds raw stderr bytes: it splits them into lines, handling "\r"
// the way a terminal does (text before a "\r" that is not part of "\r\n"
// is overwritten), so a progress bar that redraws for hours without a
// newline costs no memory. It never fails.
func (s *Scanner) Write(p []byte) (int, error) {
	for _, c := range p {
		switch {
		case c == '\n':
			s.flush()
		case c == '\r':
			s.cr = true
		default:
			if s.cr {
				s.cr = false
				if visible(string(s.buf)) != "" {
					s.prev[0], s.prev[1] = s.prev[1], append(s.prev[0][:0], s.buf...)
				}
				s.buf = s.buf[:0]
			}
			if len(s.buf) < maxLine {
				s.buf = append(s.buf, c)
			}
		}
	}
	return len(p), nil
}

// Close scans a last line that had no newline.
func (s *Scanner) Close() error {
	if len(s.buf) > 0 || len(s.prev[1]) > 0 {
		s.flush()
	}
	return nil
}

func (s *Scanner) flush() {
	line := string(s.prev[0]) + "\r" + string(s.prev[1]) + "\r" + string(s.buf)
	s.buf, s.prev[0], s.prev[1], s.cr = s.buf[:0], s.prev[0][:0], s.prev[1][:0], false
	s.Line(line)
}

// Line feeds one stderr line (without its newline). Colour codes and "\r"
// progress redraws are allowed: the text after the last "\r" is the line,
// the text before it the progress status.
func (s *Scanner) Line(line string) {
	s.seq++
	text, status := splitCR(line)
	if m := reStatus().FindStringSubmatch(status); m != nil {
		s.setHint(m[1])
	}
	if m := rePrefix().FindStringSubmatch(text); m != nil {
		// Builder output (-L). Only a note is believed here: ssh://
		// builders send theirs through the build log.
		s.setHint(m[1])
		if dir, ok := noteDir(m[2]); ok {
			s.addNote(dir, m[1])
		}
		return
	}
	t := strings.TrimSpace(text)
	if dir, ok := noteDir(t); ok {
		s.addNote(dir, "")
		return
	}
	if m := reBuilding().FindStringSubmatch(t); m != nil {
		s.builds = append(s.builds, building{m[1], s.seq})
		if m[2] != "" {
			s.remote[m[1]] = m[2]
		}
		return
	}
	if m := reReason().FindStringSubmatch(t); m != nil && s.cannot != nil {
		c := s.cannot
		s.cannot = nil
		s.fail(c.drv, code(m[1]), c.remote)
		return
	}
	msg, _ := strings.CutPrefix(t, "error: ")
	msg, _ = strings.CutPrefix(msg, "warning: ")
	if strings.HasPrefix(msg, remoteKept) {
		s.warned = true
		return
	}
	s.failure(msg, false)
}

// failure reads one error message (without "error: "); remote says it is
// a remote builder's message, quoted in "build of … on … failed: ".
func (s *Scanner) failure(msg string, remote bool) {
	if m := reRemote().FindStringSubmatch(msg); m != nil && !remote {
		drv := m[1]
		s.remote[drv] = m[2]
		s.fail(drv, -1, true)
		if s.warned {
			s.warned = false
			s.fails[drv].keptRemote = true
		}
		s.failure(m[3], true)
		return
	}
	if m := reBuilderFor().FindStringSubmatch(msg); m != nil {
		s.fail(m[1], code(m[2]), remote)
		return
	}
	if m := reCannot().FindStringSubmatch(msg); m != nil {
		// A failure only if the next line gives a builder failure as the
		// reason (not "1 dependency failed", "platform mismatch", …).
		s.cannot = &cannotAt{m[1], remote}
		return
	}
	if m := reHash().FindStringSubmatch(msg); m != nil {
		s.fail(m[1], -1, remote)
	}
}

// fail records a failure of drv. The exit code of a remote build comes
// only from the builder's own message: the local line after it carries
// the exit code of the build hook (1).
func (s *Scanner) fail(drv string, exit int, remote bool) {
	f := s.fails[drv]
	if f == nil {
		f = &failed{seq: s.seq, exit: -1}
		s.fails[drv] = f
	}
	switch {
	case exit < 0:
	case remote:
		f.exit = exit
	case s.remote[drv] == "" && f.exit < 0:
		f.exit = exit
	}
}

func (s *Scanner) setHint(name string) {
	s.hintName = name
	s.hintSeq = s.seq
}

func (s *Scanner) addNote(dir, prefix string) {
	n := note{dir: dir, seq: s.seq, prefix: prefix, dirName: buildDirName(dir)}
	var last building
	if len(s.builds) > 0 {
		last = s.builds[len(s.builds)-1]
	}
	if s.hintName != "" && s.hintSeq > last.seq {
		n.hint = s.hintName
	} else {
		n.last = last.drv
	}
	s.notes = append(s.notes, n)
}

// Failures returns the failed derivations in the order they failed (the
// first note or failure line of each).
func (s *Scanner) Failures() []Failure {
	fs, _ := s.resolve()
	return fs
}

// Unmatched returns kept directories that the log named but that could
// not be tied to a derivation, e.g. a `nix build` on a terminal with
// --keep-going, whose log names some failed builds only by their note.
func (s *Scanner) Unmatched() []string {
	_, u := s.resolve()
	return u
}

type result struct {
	Failure
	seq int
}

func (s *Scanner) resolve() ([]Failure, []string) {
	x := s.index()
	res := map[string]*result{}
	get := func(drv string, seq int) *result {
		r := res[drv]
		if r == nil {
			r = &result{Failure{Drv: drv, ExitCode: -1, Builder: s.remote[drv]}, seq}
			if f := s.fails[drv]; f != nil {
				r.ExitCode, r.KeptRemote, r.seq = f.exit, f.keptRemote, f.seq
			}
			res[drv] = r
		}
		if seq < r.seq {
			r.seq = seq
		}
		return r
	}
	for drv, f := range s.fails {
		get(drv, f.seq)
	}

	var unmatched []string
	var nameless []note
	for _, n := range s.notes {
		drv, ok := s.noteDrv(x, n)
		switch {
		case !ok: // builder output that only looks like a note
		case drv != "":
			get(drv, n.seq).KeptDir = n.dir // a later note wins
		case n.dirName == "" && n.prefix == "" && n.hint == "":
			nameless = append(nameless, n)
		default:
			unmatched = append(unmatched, n.dir)
		}
	}

	rs := make([]*result, 0, len(res))
	for _, r := range res {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].seq != rs[j].seq {
			return rs[i].seq < rs[j].seq
		}
		return rs[i].Drv < rs[j].Drv
	})
	// A note nothing names goes to the next failure without a note:
	// without --keep-going that is the line right after it. Notes and
	// failures are both in log order, so one pass pairs them.
	j := 0
	for _, n := range nameless {
		for j < len(rs) && (rs[j].seq <= n.seq || rs[j].KeptDir != "") {
			j++
		}
		if j == len(rs) {
			unmatched = append(unmatched, n.dir)
			continue
		}
		rs[j].KeptDir = n.dir
		j++
	}

	out := make([]Failure, len(rs))
	for i, r := range rs {
		out[i] = r.Failure
	}
	return out, unmatched
}

// byName indexes the derivations of the log by name.
type byName struct {
	builds map[string][]building // in log order
	fails  map[string]string     // the first failure line's drv
}

func (s *Scanner) index() byName {
	x := byName{map[string][]building{}, map[string]string{}}
	for _, b := range s.builds {
		n := nix.DrvName(b.drv)
		x.builds[n] = append(x.builds[n], b)
	}
	first := map[string]int{}
	for d, f := range s.fails {
		n := nix.DrvName(d)
		if old, ok := x.fails[n]; !ok || f.seq < first[n] || f.seq == first[n] && d < old {
			x.fails[n], first[n] = d, f.seq
		}
	}
	return x
}

// find returns the derivation called name: the last one whose build began
// before seq, else the first failure line for it, else any build of it.
func (x byName) find(name string, seq int) string {
	bs := x.builds[name]
	i := sort.Search(len(bs), func(i int) bool { return bs[i].seq >= seq })
	if i > 0 {
		return bs[i-1].drv
	}
	if d := x.fails[name]; d != "" {
		return d
	}
	if len(bs) > 0 {
		return bs[0].drv
	}
	return ""
}

// noteDrv finds the derivation a note belongs to. ok is false for a note
// to ignore; drv is "" when the note could not be placed.
func (s *Scanner) noteDrv(x byName, n note) (drv string, ok bool) {
	if n.prefix != "" {
		// Only a remote (ssh://) build's log carries a real note; in a
		// local build's output it is a nested Nix talking (its tests).
		if n.dirName != "" && n.dirName != n.prefix {
			return "", false
		}
		drv = x.find(n.prefix, n.seq)
		return drv, drv != "" && s.remote[drv] != ""
	}
	name := n.dirName
	if name == "" {
		name = n.hint
	}
	if name != "" {
		return x.find(name, n.seq), true
	}
	return n.last, true
}

// buildDirName is the derivation name dir's build directory is named
// for (nix.ParseBuildDir): NAME for nix-build-NAME.drv-N (Nix ≤2.29)
// and nix-build-NAME.drv-PID-N (2.30.0 to 2.31.1), whether dir is that
// directory or its build/; "" for the later nix-PID-N, for Lix and for
// anything else.
func buildDirName(dir string) string {
	b, _ := nix.ParseBuildDir(dir)
	return b.Name
}

// noteDir parses `note: keeping build directory '…'` ('…' up to Nix 2.33,
// "…" from 2.34).
func noteDir(t string) (string, bool) {
	rest, ok := strings.CutPrefix(t, notePrefix)
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	if n := len(rest); n >= 2 && (rest[0] == '\'' || rest[0] == '"') && rest[n-1] == rest[0] {
		rest = rest[1 : n-1]
	}
	if !strings.HasPrefix(rest, "/") || strings.ContainsAny(rest, "\x00") {
		return "", false
	}
	return rest, true
}

func code(s string) int {
	if s == "" {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 255 {
		return -1
	}
	return n
}

// splitCR returns what a terminal would show of line (the text after the
// last "\r" with something visible) and the visible text before it, both
// without colour codes.
func splitCR(line string) (text, status string) {
	line = strings.TrimRight(line, "\r\n")
	segs := strings.Split(line, "\r")
	for i := len(segs) - 1; i >= 0; i-- {
		v := visible(segs[i])
		if v == "" {
			continue
		}
		if text == "" {
			text = v
			continue
		}
		return text, v
	}
	return text, ""
}

// visible strips ANSI escape sequences (CSI, OSC/DCS and other escapes)
// and other control characters except tabs.
func visible(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0x1b && i+1 < len(s) && s[i+1] == '[': // CSI … final byte
			i += 2
			for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) {
				i++
			}
		case c == 0x1b && i+1 < len(s) && strings.IndexByte("]PX^_", s[i+1]) >= 0: // OSC, DCS…: up to BEL or ST
			i += 2
			for i < len(s) && s[i] != 0x07 && !(s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\') {
				i++
			}
			if i < len(s) && s[i] == 0x1b {
				i++
			}
		case c == 0x1b: // ESC, intermediate bytes, final byte ("\x1b(B")
			i++
			for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
				i++
			}
		case c == '\t' || (c >= 0x20 && c != 0x7f):
			b.WriteByte(c)
		}
	}
	return b.String()
}
