package nix

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// A .drv file is the ATerm Nix writes in Derivation::unparse
// (src/libstore/derivations.cc):
//
//	Derive([("out","/nix/store/…-x","","")],     outputs: name, path, hash algo, hash
//	       [("/nix/store/…-y.drv",["out"])],     input derivations and their outputs
//	       ["/nix/store/…-src"],                 input sources
//	       "x86_64-linux","/nix/store/…-bash",   platform, builder
//	       ["-e","builder.sh"],                  builder arguments
//	       [("name","value")])                   environment
//
// on one line, without the spaces. Strings escape \" \\ \n \r \t and nothing
// else; as in Nix's own parser, a backslash before any other byte stands for
// that byte.
//
// With the dynamic-derivations experimental feature, Nix writes
// DrvWithVersion("xp-dyn-drv",…) instead of Derive(…), and an input may then
// be (["out"],[("out",[…])]): outputs of the input plus outputs of the
// derivations those outputs are. Only the first level is kept in InputDrvs;
// the others name derivations that do not exist until the build runs.

// Output is one output of a derivation.
type Output struct {
	Name string
	// Path is empty for outputs whose path is only known after the
	// build (content-addressed and impure derivations).
	Path string
	// HashAlgo and Hash are set for content-addressed outputs. HashAlgo
	// carries the ingestion method as a prefix ("r:sha256" for NAR
	// hashing, "text:sha256"), Hash is base-16, or "impure".
	HashAlgo string
	Hash     string
}

// Derivation is a parsed .drv file.
type Derivation struct {
	Outputs   []Output            // in file order, which Nix sorts by name
	InputDrvs map[string][]string // .drv path → the outputs used
	InputSrcs []string
	Platform  string
	Builder   string
	Args      []string
	Env       map[string]string
}

// IsFixedOutput reports whether d is a fixed-output derivation: a single
// output "out" whose hash is given in advance. Nix gives those the host's
// network and passes impureEnvVars through. An impure derivation (hash
// "impure", an experimental feature) is not fixed-output, as in Nix's
// DerivationType::isFixed.
func (d *Derivation) IsFixedOutput() bool {
	return len(d.Outputs) == 1 && d.Outputs[0].Name == "out" &&
		d.Outputs[0].Hash != "" && d.Outputs[0].Hash != "impure"
}

// Unparse writes d as Nix writes a .drv file (src/libstore/derivations.cc,
// Derivation::unparse): Derive(…) on one line, the input derivations and
// the environment sorted, the rest in d's order. A derivation with
// dynamic inputs comes out in the plain form, its nested outputs dropped
// as ParseDerivation drops them.
func (d *Derivation) Unparse() []byte {
	var b bytes.Buffer
	str := func(s string) {
		b.WriteByte('"')
		for i := 0; i < len(s); i++ {
			switch c := s[i]; c {
			case '"', '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
	}
	list := func(n int, item func(i int)) {
		b.WriteByte('[')
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			item(i)
		}
		b.WriteByte(']')
	}
	sorted := func(m map[string]string) []string {
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys
	}
	b.WriteString("Derive(")
	list(len(d.Outputs), func(i int) {
		o := d.Outputs[i]
		b.WriteByte('(')
		str(o.Name)
		for _, s := range []string{o.Path, o.HashAlgo, o.Hash} {
			b.WriteByte(',')
			str(s)
		}
		b.WriteByte(')')
	})
	b.WriteByte(',')
	var drvs []string
	for k := range d.InputDrvs {
		drvs = append(drvs, k)
	}
	sort.Strings(drvs)
	list(len(drvs), func(i int) {
		b.WriteByte('(')
		str(drvs[i])
		b.WriteByte(',')
		outs := d.InputDrvs[drvs[i]]
		list(len(outs), func(j int) { str(outs[j]) })
		b.WriteByte(')')
	})
	b.WriteByte(',')
	list(len(d.InputSrcs), func(i int) { str(d.InputSrcs[i]) })
	b.WriteByte(',')
	str(d.Platform)
	b.WriteByte(',')
	str(d.Builder)
	b.WriteByte(',')
	list(len(d.Args), func(i int) { str(d.Args[i]) })
	b.WriteByte(',')
	keys := sorted(d.Env)
	list(len(keys), func(i int) {
		b.WriteByte('(')
		str(keys[i])
		b.WriteByte(',')
		str(d.Env[keys[i]])
		b.WriteByte(')')
	})
	b.WriteByte(')')
	return b.Bytes()
}

// ReadDerivation reads and parses the .drv file at path.
func ReadDerivation(path string) (*Derivation, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read derivation: %w", err)
	}
	d, err := parseDerivation(data)
	if err != nil {
		return nil, fmt.Errorf("parse derivation %s: %w", path, err)
	}
	return d, nil
}

// ParseDerivation parses the contents of a .drv file.
func ParseDerivation(data []byte) (*Derivation, error) {
	d, err := parseDerivation(data)
	if err != nil {
		return nil, fmt.Errorf("parse derivation: %w", err)
	}
	return d, nil
}

// maxDrvDepth bounds the nesting of dynamic-derivation inputs. Real files
// nest once or twice; the bound keeps a hostile file from recursing until
// the Go stack limit kills the process, which no recover can catch.
const maxDrvDepth = 64

type drvParser struct {
	data []byte
	pos  int
}

func parseDerivation(data []byte) (*Derivation, error) {
	p := &drvParser{data: data}
	d := &Derivation{InputDrvs: map[string][]string{}, Env: map[string]string{}}
	dynamic := false
	switch {
	case p.consume("Derive("):
	case p.consume("DrvWithVersion("):
		start := p.pos
		v, err := p.str()
		if err != nil {
			return nil, err
		}
		if v != "xp-dyn-drv" {
			return nil, p.errAt(start, "unsupported derivation format version %q", v)
		}
		if err := p.expect(','); err != nil {
			return nil, err
		}
		dynamic = true
	default:
		return nil, p.errAt(0, "not a derivation: does not start with Derive( or DrvWithVersion(")
	}

	seen := map[string]bool{}
	err := p.list(func() error {
		var o Output
		if err := p.expect('('); err != nil {
			return err
		}
		start := p.pos
		if err := p.strs(&o.Name, &o.Path, &o.HashAlgo, &o.Hash); err != nil {
			return err
		}
		if seen[o.Name] {
			return p.errAt(start, "duplicate output %q", o.Name)
		}
		seen[o.Name] = true
		if o.Path != "" && !strings.HasPrefix(o.Path, "/") {
			return p.errAt(start, "output %q has a relative path %q", o.Name, o.Path)
		}
		d.Outputs = append(d.Outputs, o)
		return p.expect(')')
	})
	if err != nil {
		return nil, err
	}

	if err := p.expect(','); err != nil {
		return nil, err
	}
	err = p.list(func() error {
		if err := p.expect('('); err != nil {
			return err
		}
		start := p.pos
		path, err := p.path()
		if err != nil {
			return err
		}
		if _, dup := d.InputDrvs[path]; dup {
			return p.errAt(start, "duplicate input derivation %q", path)
		}
		if err := p.expect(','); err != nil {
			return err
		}
		outs, err := p.inputNode(dynamic, 0)
		if err != nil {
			return err
		}
		d.InputDrvs[path] = outs
		return p.expect(')')
	})
	if err != nil {
		return nil, err
	}

	if err := p.expect(','); err != nil {
		return nil, err
	}
	err = p.list(func() error {
		path, err := p.path()
		d.InputSrcs = append(d.InputSrcs, path)
		return err
	})
	if err != nil {
		return nil, err
	}

	if err := p.expect(','); err != nil {
		return nil, err
	}
	if err := p.strs(&d.Platform, &d.Builder); err != nil {
		return nil, err
	}
	if err := p.expect(','); err != nil {
		return nil, err
	}
	err = p.list(func() error {
		s, err := p.str()
		d.Args = append(d.Args, s)
		return err
	})
	if err != nil {
		return nil, err
	}

	if err := p.expect(','); err != nil {
		return nil, err
	}
	err = p.list(func() error {
		var name, value string
		if err := p.expect('('); err != nil {
			return err
		}
		start := p.pos
		if err := p.strs(&name, &value); err != nil {
			return err
		}
		if _, dup := d.Env[name]; dup {
			return p.errAt(start, "duplicate environment variable %q", name)
		}
		d.Env[name] = value
		return p.expect(')')
	})
	if err != nil {
		return nil, err
	}
	if err := p.expect(')'); err != nil {
		return nil, err
	}
	// Nix writes no newline, but an editor might add one.
	if rest := bytes.TrimRight(p.data[p.pos:], " \t\r\n"); len(rest) > 0 {
		return nil, p.errAt(p.pos, "unexpected data after the derivation")
	}
	return d, nil
}

func (p *drvParser) errAt(off int, format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s", off, fmt.Sprintf(format, args...))
}

func (p *drvParser) consume(s string) bool {
	if bytes.HasPrefix(p.data[p.pos:], []byte(s)) {
		p.pos += len(s)
		return true
	}
	return false
}

func (p *drvParser) expect(c byte) error {
	if p.pos >= len(p.data) {
		return p.errAt(p.pos, "unexpected end of input, expected %q", c)
	}
	if p.data[p.pos] != c {
		return p.errAt(p.pos, "expected %q, found %q", c, p.data[p.pos])
	}
	p.pos++
	return nil
}

// list parses [item,item,…], calling item for each.
func (p *drvParser) list(item func() error) error {
	if err := p.expect('['); err != nil {
		return err
	}
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		if p.pos < len(p.data) && p.data[p.pos] == ']' {
			p.pos++
			return nil
		}
		if err := p.expect(','); err != nil {
			return err
		}
	}
}

// strs parses comma-separated strings into dst.
func (p *drvParser) strs(dst ...*string) error {
	for i, d := range dst {
		if i > 0 {
			if err := p.expect(','); err != nil {
				return err
			}
		}
		s, err := p.str()
		if err != nil {
			return err
		}
		*d = s
	}
	return nil
}

func (p *drvParser) str() (string, error) {
	start := p.pos
	if err := p.expect('"'); err != nil {
		return "", err
	}
	var b []byte
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		p.pos++
		switch c {
		case '"':
			return string(b), nil
		case '\\':
			if p.pos >= len(p.data) {
				return "", p.errAt(start, "unterminated string")
			}
			c = p.data[p.pos]
			p.pos++
			switch c {
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			}
		}
		b = append(b, c)
	}
	return "", p.errAt(start, "unterminated string")
}

// path parses a string that must be an absolute path, as Nix's parsePath
// requires for inputs.
func (p *drvParser) path() (string, error) {
	start := p.pos
	s, err := p.str()
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(s, "/") {
		return "", p.errAt(start, "bad path %q", s)
	}
	return s, nil
}

// inputNode parses the outputs wanted from one input derivation: ["out",…],
// or in the dynamic form (["out",…],[("out",<node>),…]), whose nested part
// is checked and dropped.
func (p *drvParser) inputNode(dynamic bool, depth int) ([]string, error) {
	if depth > maxDrvDepth {
		return nil, p.errAt(p.pos, "input derivations nested deeper than %d levels", maxDrvDepth)
	}
	var outs []string
	strList := func() error {
		return p.list(func() error {
			s, err := p.str()
			outs = append(outs, s)
			return err
		})
	}
	if !dynamic || p.pos >= len(p.data) || p.data[p.pos] != '(' {
		return outs, strList()
	}
	p.pos++
	if err := strList(); err != nil {
		return nil, err
	}
	if err := p.expect(','); err != nil {
		return nil, err
	}
	err := p.list(func() error {
		if err := p.expect('('); err != nil {
			return err
		}
		if _, err := p.str(); err != nil {
			return err
		}
		if err := p.expect(','); err != nil {
			return err
		}
		if _, err := p.inputNode(dynamic, depth+1); err != nil {
			return err
		}
		return p.expect(')')
	})
	if err != nil {
		return nil, err
	}
	return outs, p.expect(')')
}
