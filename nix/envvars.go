package nix

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// env-vars is what nixpkgs' stdenv leaves in the build directory: setup.sh's
// dumpVars runs `export -p >| "$NIX_BUILD_TOP/env-vars"` at the end of setup
// and before every phase, so a kept build directory holds the exported
// variables as they were when the failing phase started.
//
// bash 5.2 writes one line per variable (print_var_list → print_assignment):
//
//	declare -x NAME="value"     \ " $ ` are backslash-escaped (sh_double_quote)
//	declare -x NAME=$'l1\nl2'   values with control characters (ansic_quote)
//	declare -x NAME             exported but never set
//	declare -rx NAME="value"    other attributes are printed too
//	declare -ax NAME=([0]="a")  an exported array
//
// Older bash has no $'…' form: a newline sits literally inside "…". In POSIX
// mode every line starts with `export` instead of `declare -x`.
//
// The parser accepts exactly that language and turns everything else into an
// error. It does not expand anything, so a value bash would expand (an
// unescaped $NAME or `cmd` in double quotes) is an error too rather than a
// silently different string.

var (
	// ErrNoShell means env-vars does not give SHELL a non-empty value.
	ErrNoShell = errors.New("env-vars does not set SHELL")
	// ErrShellNotAbsolute means SHELL is not an absolute path, so it
	// cannot be found without a PATH lookup that the build never did.
	ErrShellNotAbsolute = errors.New("SHELL in env-vars is not an absolute path")
)

// Var is one line of env-vars.
type Var struct {
	Name  string
	Value string
	// HasValue is false for `declare -x NAME`: a variable marked for
	// export that was never assigned, which bash leaves out of a child's
	// environment.
	HasValue bool
}

// EnvVars is a parsed env-vars file.
type EnvVars struct {
	// Vars holds the variables in file order. Exported arrays are left
	// out: bash never passes an array to a child's environment, so the
	// build's commands did not see them either.
	Vars []Var
}

// EnvVarsError describes input that is not a valid env-vars file.
type EnvVarsError struct {
	Path string // empty when parsed from a reader
	Line int    // 1-based; 0 when the problem is the file as a whole
	Msg  string
}

func (e *EnvVarsError) Error() string {
	switch {
	case e.Path != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	case e.Path != "":
		return e.Path + ": " + e.Msg
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// ParseEnvVars parses the output of bash's `export -p`. Errors about the
// content are *EnvVarsError.
func ParseEnvVars(r io.Reader) (*EnvVars, error) {
	data, err := readLimited(r)
	if err != nil {
		return nil, fmt.Errorf("read env-vars: %w", err)
	}
	return parseEnvVars(data)
}

// ReadEnvVars reads and parses the env-vars file at path. A parse error is an
// *EnvVarsError carrying path; other errors wrap the os error, which names
// path too.
func ReadEnvVars(path string) (*EnvVars, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read env-vars: %w", err)
	}
	ev, err := parseEnvVars(data)
	var perr *EnvVarsError
	if errors.As(err, &perr) {
		perr.Path = path
	}
	return ev, err
}

// Get returns the value NAME was last given. A later `declare -x NAME`
// without a value does not unset it, as in bash. ok is false when NAME is
// absent or never has a value.
func (e *EnvVars) Get(name string) (value string, ok bool) {
	for i := len(e.Vars) - 1; i >= 0; i-- {
		if v := e.Vars[i]; v.Name == name && v.HasValue {
			return v.Value, true
		}
	}
	return "", false
}

// Environ returns "NAME=VALUE" for every variable that has a value, in the
// order of each name's first assignment, each with the value Get returns:
// the environment a command started after sourcing the file would get.
func (e *EnvVars) Environ() []string {
	index := make(map[string]int)
	var env []string
	for _, v := range e.Vars {
		if !v.HasValue {
			continue
		}
		kv := v.Name + "=" + v.Value
		if i, ok := index[v.Name]; ok {
			env[i] = kv
			continue
		}
		index[v.Name] = len(env)
		env = append(env, kv)
	}
	return env
}

// Shell returns SHELL, the bash stdenv ran the build with. It does not check
// that the file exists: the path is in the store the sandbox will mount,
// which the caller knows about and this package does not.
func (e *EnvVars) Shell() (string, error) {
	sh, ok := e.Get("SHELL")
	switch {
	case !ok:
		return "", ErrNoShell
	case sh == "":
		return "", fmt.Errorf("%w (SHELL is empty)", ErrNoShell)
	case !filepath.IsAbs(sh):
		return "", fmt.Errorf("%w: %q", ErrShellNotAbsolute, sh)
	}
	return sh, nil
}

type envParser struct {
	data []byte
	pos  int
	vars []Var
}

func parseEnvVars(data []byte) (*EnvVars, error) {
	p := &envParser{data: data}
	// No value can hold a NUL (environment strings are C strings) and
	// bash never writes one, so a NUL means this is not an env-vars file.
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return nil, p.errAt(i, "NUL byte: not a text file")
	}
	for p.pos < len(p.data) {
		if err := p.statement(); err != nil {
			return nil, err
		}
	}
	return &EnvVars{Vars: p.vars}, nil
}

// lineAt returns the 1-based line of byte offset off. Only errors need line
// numbers, so counting on demand keeps the happy path free of bookkeeping.
func (p *envParser) lineAt(off int) int {
	if off > len(p.data) {
		off = len(p.data)
	}
	return 1 + bytes.Count(p.data[:off], []byte{'\n'})
}

func (p *envParser) errAt(off int, format string, args ...any) *EnvVarsError {
	return &EnvVarsError{Line: p.lineAt(off), Msg: fmt.Sprintf(format, args...)}
}

// errUnterminated reports a quote still open at the end of the input. The
// error points at the last line, where the reader ran out, and says where
// the quote began, which is where the damage usually is.
func (p *envParser) errUnterminated(what string, start int) *EnvVarsError {
	last := len(p.data) - 1
	if last < 0 {
		last = 0
	}
	return p.errAt(last, "unterminated %s (started at line %d)", what, p.lineAt(start))
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func (p *envParser) skipBlanks() {
	for p.pos < len(p.data) && isBlank(p.data[p.pos]) {
		p.pos++
	}
}

// word returns the run of bytes up to the next blank, newline or '='.
func (p *envParser) word() string {
	start := p.pos
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if isBlank(c) || c == '\n' || c == '=' {
			break
		}
		p.pos++
	}
	return string(p.data[start:p.pos])
}

// restOfLine returns a short quote of what follows pos on its line, for
// error messages.
func (p *envParser) restOfLine(pos int) string {
	end := pos
	for end < len(p.data) && p.data[end] != '\n' && end-pos < 20 {
		end++
	}
	s := string(p.data[pos:end])
	if end < len(p.data) && p.data[end] != '\n' {
		s += "…"
	}
	return s
}

// declareFlags are the attributes bash prints for variables (declare's
// -a -A -i -l -n -r -t -u -x). Function flags (-f, -F) never appear in
// `export -p`, which lists no functions.
const declareFlags = "aAilnrtux"

func (p *envParser) statement() error {
	p.skipBlanks()
	if p.pos >= len(p.data) {
		return nil
	}
	if p.data[p.pos] == '\n' {
		p.pos++
		return nil
	}
	start := p.pos
	cmd := p.word()
	if cmd != "declare" && cmd != "export" {
		return p.errAt(start, "expected a declare or export line, found %q", p.restOfLine(start))
	}
	exported, isArray := cmd == "export", false
	for {
		if p.pos >= len(p.data) || !isBlank(p.data[p.pos]) {
			return p.errAt(start, "%s without a variable name", cmd)
		}
		p.skipBlanks()
		if p.pos >= len(p.data) || p.data[p.pos] != '-' {
			break
		}
		fpos := p.pos
		f := p.word()
		allowed := declareFlags
		if cmd == "export" {
			// POSIX mode prints only arrays with a flag (export -a,
			// export -A); export's own -n would mean "unexport".
			allowed = "aA"
		}
		if len(f) < 2 || strings.Trim(f[1:], allowed) != "" {
			return p.errAt(fpos, "unsupported %s option %q", cmd, f)
		}
		exported = exported || strings.Contains(f, "x")
		isArray = isArray || strings.ContainsAny(f, "aA")
	}
	if !exported {
		// export -p marks every line with -x; a declare without it is
		// a shell variable, which the build's commands never saw.
		return p.errAt(start, "declare without -x: not a line from export -p")
	}
	npos := p.pos
	name := p.word()
	if !isName(name) {
		return p.errAt(npos, "invalid variable name %q", name)
	}
	v := Var{Name: name}
	if p.pos < len(p.data) && p.data[p.pos] == '=' {
		p.pos++
		var err error
		if isArray {
			err = p.skipArray(name)
		} else {
			v.Value, err = p.value(name)
			v.HasValue = true
		}
		if err != nil {
			return err
		}
	}
	p.skipBlanks()
	if p.pos < len(p.data) && p.data[p.pos] != '\n' {
		return p.errAt(p.pos, "unexpected %q after %s", p.restOfLine(p.pos), name)
	}
	if !isArray {
		p.vars = append(p.vars, v)
	}
	return nil
}

// isName reports whether s is a shell identifier: bash exports nothing else.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// value parses one quoted word after NAME=. A bare empty value (NAME= at the
// end of the line) is accepted because bash reads it as "".
func (p *envParser) value(name string) (string, error) {
	if p.pos >= len(p.data) {
		return "", nil
	}
	switch c := p.data[p.pos]; {
	case c == '"':
		return p.doubleQuoted(name)
	case c == '\'':
		return p.singleQuoted()
	case c == '$' && p.pos+1 < len(p.data) && p.data[p.pos+1] == '\'':
		return p.ansiCQuoted()
	case isBlank(c) || c == '\n':
		return "", nil
	}
	return "", p.errAt(p.pos, "expected a quoted value for %s, found %q", name, p.restOfLine(p.pos))
}

// doubleQuoted decodes "…" as bash does: a backslash quotes \ " $ ` and
// removes a following newline (line continuation); before anything else it
// stays. A literal newline is part of the value (bash ≤ 5.1 wrote values
// with newlines this way).
func (p *envParser) doubleQuoted(name string) (string, error) {
	start := p.pos
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		p.pos++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.pos >= len(p.data) {
				return "", p.errUnterminated("double quote", start)
			}
			switch n := p.data[p.pos]; n {
			case '\\', '"', '$', '`':
				b.WriteByte(n)
				p.pos++
			case '\n':
				p.pos++
			default:
				b.WriteByte('\\')
			}
		case '$':
			if p.pos < len(p.data) && expands(p.data[p.pos]) {
				return "", p.errAt(p.pos-1, "unescaped $ in the value of %s: bash would expand it", name)
			}
			b.WriteByte(c)
		case '`':
			return "", p.errAt(p.pos-1, "unescaped ` in the value of %s: bash would run a command", name)
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errUnterminated("double quote", start)
}

// expands reports whether "$" followed by c is an expansion inside double
// quotes: a parameter ($x, $1, ${…}, $?, $$, …) or $(…). Otherwise, as in
// "a$" or "$ ", bash keeps the dollar sign.
func expands(c byte) bool {
	switch {
	case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("{(@*#?$!-", c) >= 0
}

func (p *envParser) singleQuoted() (string, error) {
	start := p.pos
	end := bytes.IndexByte(p.data[start+1:], '\'')
	if end < 0 {
		return "", p.errUnterminated("single quote", start)
	}
	p.pos = start + 1 + end + 1
	return string(p.data[start+1 : start+1+end]), nil
}

// ansiCQuoted reads $'…'. Like bash's lexer it first finds the closing quote,
// with a backslash protecting the byte after it, then decodes the escapes.
func (p *envParser) ansiCQuoted() (string, error) {
	start := p.pos
	i := start + 2
	for ; i < len(p.data); i++ {
		if p.data[i] == '\\' {
			i++
		} else if p.data[i] == '\'' {
			break
		}
	}
	if i >= len(p.data) {
		return "", p.errUnterminated("$'…' quote", start)
	}
	p.pos = i + 1
	return decodeANSIC(p.data[start+2 : i]), nil
}

// skipArray consumes the value of an exported array, ([0]="a" [1]="b") as
// bash ≥ 4.4 prints it or '([0]="a")' as older bash did, without keeping it.
func (p *envParser) skipArray(name string) error {
	if p.pos >= len(p.data) || p.data[p.pos] != '(' {
		_, err := p.value(name)
		return err
	}
	start := p.pos
	p.pos++
	for p.pos < len(p.data) {
		var err error
		switch c := p.data[p.pos]; {
		case c == ')':
			p.pos++
			return nil
		case c == '"':
			_, err = p.doubleQuoted(name)
		case c == '\'':
			_, err = p.singleQuoted()
		case c == '$' && p.pos+1 < len(p.data) && p.data[p.pos+1] == '\'':
			_, err = p.ansiCQuoted()
		case c == '\\':
			p.pos += 2
		case c == '(' || c == '`' || c == '$':
			return p.errAt(p.pos, "unexpected %q in the array value of %s", c, name)
		default:
			p.pos++
		}
		if err != nil {
			return err
		}
	}
	return p.errUnterminated("array value", start)
}

// decodeANSIC decodes the inside of $'…' the way bash 5.2's ansicstr does
// in a UTF-8 locale (lib/sh/strtrans.c, flags 2). Unknown escapes keep their
// backslash. The value ends at the first NUL an escape produces, because
// bash keeps values as C strings: $'a\0b' is "a".
func decodeANSIC(s []byte) string {
	var b []byte
	for i := 0; i < len(s); {
		c := s[i]
		i++
		if c != '\\' || i >= len(s) {
			b = append(b, c)
			continue
		}
		c = s[i]
		i++
		switch c {
		case 'a':
			c = '\a'
		case 'b':
			c = '\b'
		case 'e', 'E':
			c = 0x1b
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'v':
			c = '\v'
		case '\\', '\'', '"', '?':
		case '0', '1', '2', '3', '4', '5', '6', '7':
			// One to three octal digits; \777 wraps to a byte as in C.
			v := int(c - '0')
			for n := 0; n < 2 && i < len(s) && s[i] >= '0' && s[i] <= '7'; n++ {
				v = v*8 + int(s[i]-'0')
				i++
			}
			c = byte(v)
		case 'x':
			// \xHH takes one or two hex digits; ksh's \x{H…} any number
			// (the byte is the low 8 bits). A bare \x stays as is.
			var v uint64
			n := 0
			brace := i < len(s) && s[i] == '{'
			if brace {
				i++
			}
			for ; i < len(s) && (brace || n < 2) && isHex(s[i]); n++ {
				v = v<<4 | uint64(unhex(s[i]))
				i++
			}
			if brace {
				if i < len(s) && s[i] == '}' {
					i++
				}
			} else if n == 0 {
				b = append(b, '\\')
				c = 'x'
				break
			}
			c = byte(v)
		case 'u', 'U':
			max := 4
			if c == 'U' {
				max = 8
			}
			var v uint32
			n := 0
			for ; n < max && i < len(s) && isHex(s[i]); n++ {
				v = v<<4 | uint32(unhex(s[i]))
				i++
			}
			if n == 0 {
				b = append(b, '\\')
				break
			}
			if v > 0x7f {
				b = appendUTF8Bash(b, v)
				continue
			}
			c = byte(v)
		case 'c':
			// \cX is control-X, \c? DEL; $'\c\\' spends both backslashes.
			if i >= len(s) {
				b = append(b, '\\')
				break
			}
			x := s[i]
			i++
			if x == '\\' && i < len(s) && s[i] == '\\' {
				i++
			}
			if x == '?' {
				c = 0x7f
			} else {
				if x >= 'a' && x <= 'z' {
					x -= 'a' - 'A'
				}
				c = x & 0x1f
			}
		default:
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// appendUTF8Bash encodes v like bash's u32toutf8 (lib/sh/unicode.c), which
// is what \u and \U give in a UTF-8 locale: surrogates are encoded as they
// are, values past U+10FFFF use the old 4-, 5- and 6-byte forms, and values
// from 2^31 up produce nothing. Go's utf8 package would write U+FFFD
// instead, a different value.
func appendUTF8Bash(b []byte, v uint32) []byte {
	switch {
	case v < 0x80:
		return append(b, byte(v))
	case v < 0x800:
		return append(b, byte(v>>6)|0xc0, byte(v&0x3f)|0x80)
	case v < 0x10000:
		return append(b, byte(v>>12)|0xe0, byte(v>>6&0x3f)|0x80, byte(v&0x3f)|0x80)
	case v < 0x200000:
		return append(b, byte(v>>18)|0xf0, byte(v>>12&0x3f)|0x80, byte(v>>6&0x3f)|0x80, byte(v&0x3f)|0x80)
	case v < 0x4000000:
		return append(b, byte(v>>24)|0xf8, byte(v>>18&0x3f)|0x80, byte(v>>12&0x3f)|0x80, byte(v>>6&0x3f)|0x80, byte(v&0x3f)|0x80)
	case v < 0x80000000:
		return append(b, byte(v>>30)|0xfc, byte(v>>24&0x3f)|0x80, byte(v>>18&0x3f)|0x80, byte(v>>12&0x3f)|0x80, byte(v>>6&0x3f)|0x80, byte(v&0x3f)|0x80)
	}
	return b
}
