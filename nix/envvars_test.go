package nix

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseEnvVars(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Var
	}{
		{"empty", "", nil},
		{"blank lines", "\n\n  \n\t\n", nil},
		{
			"declare forms",
			"declare -x A=\"1\"\ndeclare -x B\ndeclare -x C=\"\"\n",
			[]Var{{"A", "1", true}, {"B", "", false}, {"C", "", true}},
		},
		{"no trailing newline", `declare -x A="1"`, []Var{{"A", "1", true}}},
		{"blank lines between", "\ndeclare -x A=\"1\"\n\n\ndeclare -x B=\"2\"\n\n", []Var{{"A", "1", true}, {"B", "2", true}}},
		{"trailing blanks", "declare -x A=\"1\"  \t\n", []Var{{"A", "1", true}}},
		{"leading blanks", "  declare   -x   A=\"1\"\n", []Var{{"A", "1", true}}},
		{"underscore and digits", "declare -x _a1_B2=\"v\"\n", []Var{{"_a1_B2", "v", true}}},
		{
			"double-quote escapes",
			`declare -x A="q\" b\\ d\$ t\` + "`" + `"`,
			[]Var{{"A", "q\" b\\ d$ t`", true}},
		},
		{
			// sh_double_quote escapes only \ " $ `; any other backslash
			// is literal, as bash reads it.
			"literal backslashes",
			`declare -x A="\n\t\a\x41\'\z"`,
			[]Var{{"A", `\n\t\a\x41\'\z`, true}},
		},
		{"dollar that does not expand", `declare -x A="a$ $ $% $"`, []Var{{"A", "a$ $ $% $", true}}},
		{"single quotes inside double", `declare -x A="it's"`, []Var{{"A", "it's", true}}},
		{
			"multi-line double-quoted (bash ≤ 5.1)",
			"declare -x A=\"l1\nl2\n\nl4\"\ndeclare -x B=\"x\"\n",
			[]Var{{"A", "l1\nl2\n\nl4", true}, {"B", "x", true}},
		},
		{"double-quoted value that is a newline", "declare -x A=\"\n\"\n", []Var{{"A", "\n", true}}},
		{"backslash-newline continues the line", "declare -x A=\"a\\\nb\"\n", []Var{{"A", "ab", true}}},
		{
			"ANSI-C from bash 5.2",
			`declare -x A=$'l1\nl2\t\001\177\377\303\251\'"\\$` + "`" + `\E\a\b\f\v\r?'`,
			[]Var{{"A", "l1\nl2\t\x01\x7f\xff\xc3\xa9'\"\\$`\x1b\a\b\f\v\r?", true}},
		},
		{
			"ANSI-C escapes bash never writes",
			`declare -x A=$'\e\"\?\x41\x4a4\u00e9\U0001F600\ca\c?\cZ\q\x\u\0101\7'`,
			[]Var{{"A", "\x1b\"?AJ4é😀\x01\x7f\x1a\\q\\x\\u\x081\x07", true}},
		},
		{"ANSI-C NUL ends the value, as in bash", `declare -x A=$'ab\0cd'`, []Var{{"A", "ab", true}}},
		{"ANSI-C empty", `declare -x A=$''`, []Var{{"A", "", true}}},
		{"ANSI-C literal newline", "declare -x A=$'a\nb'", []Var{{"A", "a\nb", true}}},
		{"single-quoted", `declare -x A='a "b" \n $x'`, []Var{{"A", `a "b" \n $x`, true}}},
		{"bare empty value", "declare -x A=\ndeclare -x B= \n", []Var{{"A", "", true}, {"B", "", true}}},
		{
			"other attributes",
			"declare -rx A=\"1\"\ndeclare -ix B=\"2\"\ndeclare -xl C=\"low\"\ndeclare -nx D=\"B\"\ndeclare -r -x E=\"5\"\ndeclare -tux F\n",
			[]Var{{"A", "1", true}, {"B", "2", true}, {"C", "low", true}, {"D", "B", true}, {"E", "5", true}, {"F", "", false}},
		},
		{
			"POSIX mode",
			"export OLDPWD\nexport PWD=\"/tmp\"\nexport s=$'l1\\nl2'\n",
			[]Var{{"OLDPWD", "", false}, {"PWD", "/tmp", true}, {"s", "l1\nl2", true}},
		},
		{
			"arrays are not exported and are skipped",
			"declare -ax a=([0]=\"1\" [1]=\"2 3\" [2]=$'x\\ny')\n" +
				"declare -Ax h=([$'\\001']=\"y\" [\"]\"]=\"z\" [k]=\"v\" [$'n\\nl']=\"x\" [\"a b\"]=\"c\\\"d\" [\"\\$x\"]=\"w\" )\n" +
				"declare -ax e=()\n" +
				"declare -ax m=([0]=\"multi\nline\")\n" +
				"declare -ax old='([0]=\"bash 4.3\")'\n" +
				"declare -ax unset\n" +
				"export -a p=([0]=\"posix\")\n" +
				"declare -x after=\"ok\"\n",
			[]Var{{"after", "ok", true}},
		},
		{"UTF-8 and invalid UTF-8 pass through", "declare -x A=\"é\xff\xfe\"", []Var{{"A", "é\xff\xfe", true}}},
		{"duplicates are kept in order", "declare -x A=\"1\"\ndeclare -x A=\"2\"\n", []Var{{"A", "1", true}, {"A", "2", true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseEnvVars(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ParseEnvVars: %v", err)
			}
			if !reflect.DeepEqual(ev.Vars, tt.want) {
				t.Errorf("got  %+q\nwant %+q", fmtVars(ev.Vars), fmtVars(tt.want))
			}
		})
	}
}

func TestParseEnvVarsErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		line int
		msg  string // substring of Msg
	}{
		{"not declare", "declare -x A=\"1\"\nfoo=bar\n", 2, `expected a declare or export line, found "foo=bar"`},
		{"comment", "# hi\n", 1, "expected a declare or export line"},
		{"function", "declare -fx f\n", 1, `unsupported declare option "-fx"`},
		{"declare without -x", "declare -- A=\"1\"\n", 1, "unsupported declare option"},
		{"declare -r only", "declare -r A=\"1\"\n", 1, "declare without -x"},
		{"export -n", "export -n A\n", 1, `unsupported export option "-n"`},
		{"declare alone", "declare\n", 1, "declare without a variable name"},
		{"declare -x alone", "declare -x\n", 1, "declare without a variable name"},
		{"declare -x then blanks", "declare -x  \n", 1, `invalid variable name ""`},
		{"invalid name", "declare -x 1A=\"1\"\n", 1, `invalid variable name "1A"`},
		{"invalid name chars", "declare -x a.b=\"1\"\n", 1, `invalid variable name "a.b"`},
		{"dash name", "export a-b\n", 1, `invalid variable name "a-b"`},
		{"unterminated double", "declare -x A=\"1\n\n", 2, "unterminated double quote (started at line 1)"},
		{"unterminated double one line", "\n\n\n\n\n\n\n\n\n\n\ndeclare -x A=\"1", 12, "unterminated double quote (started at line 12)"},
		{"unterminated by escaped quote", `declare -x A="1\"`, 1, "unterminated double quote"},
		{"unterminated after backslash", `declare -x A="1\`, 1, "unterminated double quote"},
		{"unterminated ANSI-C", "declare -x A=$'a\\'\n", 1, "unterminated $'…' quote (started at line 1)"},
		{"unterminated ANSI-C backslash", "declare -x A=$'a\\", 1, "unterminated $'…' quote"},
		{"unterminated single", "declare -x A='a\nb\n", 2, "unterminated single quote (started at line 1)"},
		{"unterminated array", "declare -ax A=([0]=\"a\"\n", 1, "unterminated array value"},
		{"junk after double", "declare -x A=\"1\"junk\n", 1, `unexpected "junk" after A`},
		{"junk after ANSI-C", "declare -x A=$'1'2\n", 1, `unexpected "2" after A`},
		{"second assignment", "declare -x A=\"1\" B=\"2\"\n", 1, `unexpected "B=\"2\"" after A`},
		{"CRLF", "declare -x A=\"1\"\r\n", 1, `unexpected "\r" after A`},
		{"junk after bare name", "declare -x A B\n", 1, `unexpected "B" after A`},
		{"unquoted value", "declare -x A=1\n", 1, `expected a quoted value for A, found "1"`},
		{"unquoted dollar", "declare -x A=$HOME\n", 1, "expected a quoted value for A"},
		{"expansion", `declare -x A="$HOME"`, 1, "unescaped $ in the value of A: bash would expand it"},
		{"braced expansion", `declare -x A="${HOME}"`, 1, "unescaped $"},
		{"command substitution", `declare -x A="$(id)"`, 1, "unescaped $"},
		{"backquote", "declare -x A=\"`id`\"", 1, "unescaped ` in the value of A"},
		{"NUL", "declare -x A=\"1\"\ndeclare -x B=\"\x00\"\n", 2, "NUL byte"},
		{"junk in array", "declare -ax A=([0]=$(id))\n", 1, "unexpected '$' in the array value of A"},
		{"long junk is shortened", "0123456789012345678901234567890123456789\n", 1, `found "01234567890123456789…"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEnvVars(strings.NewReader(tt.in))
			var perr *EnvVarsError
			if !errors.As(err, &perr) {
				t.Fatalf("got %v (%T), want *EnvVarsError", err, err)
			}
			if perr.Line != tt.line || !strings.Contains(perr.Msg, tt.msg) {
				t.Errorf("got line %d %q, want line %d containing %q", perr.Line, perr.Msg, tt.line, tt.msg)
			}
		})
	}
}

func TestEnvVarsErrorString(t *testing.T) {
	tests := []struct {
		err  EnvVarsError
		want string
	}{
		{EnvVarsError{"env-vars", 12, "unterminated double quote (started at line 12)"}, "env-vars:12: unterminated double quote (started at line 12)"},
		{EnvVarsError{"", 3, "bad"}, "line 3: bad"},
		{EnvVarsError{"/x/env-vars", 0, "bad"}, "/x/env-vars: bad"},
		{EnvVarsError{"", 0, "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// TestReadEnvVarsRealBuild reads files captured from real `nix-build
// --keep-failed` runs on this machine (Nix 2.8, bash 5.2.15; the .nix files
// next to them made them).
func TestReadEnvVarsRealBuild(t *testing.T) {
	ev, err := ReadEnvVars("testdata/demo-fail.env-vars")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"HOME":            "/homeless-shelter",
		"NIX_BUILD_CORES": "2",
		"PATH":            "/path-not-set",
		"SHELL":           "/nix/store/gsmjp5dzhqrpk3ffx5p6d567nx3xzsag-bash",
		"out":             "/nix/store/hwijnk91dzpjnh2ikywrj5jp1kvbgj55-demo-fail",
		"PWD":             "/build",
	}
	for k, v := range want {
		if got, ok := ev.Get(k); !ok || got != v {
			t.Errorf("Get(%q) = %q, %v; want %q", k, got, ok, v)
		}
	}
	if len(ev.Vars) != 19 {
		t.Errorf("got %d vars, want 19", len(ev.Vars))
	}
	if _, ok := ev.Get("OLDPWD"); ok {
		t.Errorf("OLDPWD has no value in the file, Get says it has one")
	}
	if sh, err := ev.Shell(); err != nil || sh != want["SHELL"] {
		t.Errorf("Shell() = %q, %v", sh, err)
	}
	env := ev.Environ()
	if len(env) != 18 || env[0] != "HOME=/homeless-shelter" || env[17] != "system=x86_64-linux" {
		t.Errorf("Environ() = %q", env)
	}

	ev, err = ReadEnvVars("testdata/tricky.env-vars")
	if err != nil {
		t.Fatal(err)
	}
	tricky := map[string]string{
		"CTRL":      "bell\a esc\x1b tab\t cr\r del\x7f",
		"HIGH":      "\xff\xfe latin1 \xe9",
		"EMPTY":     "",
		"NUM":       "42",
		"RO":        "read only",
		"multiLine": "line one\nline two",
		"quoting":   "a \"quoted\" \\ back $dollar `tick` 'single'",
		"unicode":   "café ☃ 日本",
	}
	for k, v := range tricky {
		if got, ok := ev.Get(k); !ok || got != v {
			t.Errorf("Get(%q) = %q, %v; want %q", k, got, ok, v)
		}
	}
	for _, k := range []string{"UNSET_BUT_EXPORTED", "arr"} {
		if got, ok := ev.Get(k); ok {
			t.Errorf("Get(%q) = %q, want no value", k, got)
		}
	}
	for _, v := range ev.Vars {
		if v.Name == "arr" {
			t.Errorf("the exported array arr is in Vars")
		}
	}
}

func TestReadEnvVarsErrors(t *testing.T) {
	dir := t.TempDir()

	_, err := ReadEnvVars(filepath.Join(dir, "missing"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, "missing")) {
		t.Errorf("missing file: got %v", err)
	}

	bad := filepath.Join(dir, "env-vars")
	os.WriteFile(bad, []byte("declare -x A=\"1\"\ndeclare -x B=\"2\n"), 0o644)
	_, err = ReadEnvVars(bad)
	want := bad + ":2: unterminated double quote (started at line 2)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}

	_, err = ReadEnvVars(dir)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("directory: got %v, want an error naming %s", err, dir)
	}

	// A sparse file: refused from its size, before reading.
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, maxFileSize+1); err != nil {
		t.Fatal(err)
	}
	_, err = ReadEnvVars(big)
	if want := "read env-vars: " + big + ": input larger than 64 MiB"; !errors.Is(err, ErrTooLarge) || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	_, err = ReadDerivation(big)
	if want := "read derivation: " + big + ": input larger than 64 MiB"; !errors.Is(err, ErrTooLarge) || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestSizeLimit checks that an endless input is refused after 64 MiB rather
// than read to the end.
func TestSizeLimit(t *testing.T) {
	line := []byte("declare -x A=\"" + strings.Repeat("x", 1000) + "\"\n")
	r := &repeatReader{line: line, limit: maxFileSize + 10*len(line)}
	_, err := ParseEnvVars(r)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if r.n > maxFileSize+int64(len(line))+64<<10 {
		t.Errorf("read %d bytes, want about %d", r.n, maxFileSize)
	}

	exact := bytes.Repeat([]byte("\n"), maxFileSize)
	if _, err := ParseEnvVars(bytes.NewReader(exact)); err != nil {
		t.Errorf("exactly 64 MiB: %v", err)
	}
}

type repeatReader struct {
	line  []byte
	limit int
	n     int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n >= int64(r.limit) {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) {
		n += copy(p[n:], r.line[int(r.n+int64(n))%len(r.line):])
	}
	r.n += int64(n)
	return n, nil
}

func TestGetEnviron(t *testing.T) {
	in := `declare -x A="1"
declare -x B
declare -x C="3"
declare -x A="one"
declare -x C
declare -x B="2"
`
	ev, err := ParseEnvVars(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, value string
		ok          bool
	}{
		{"A", "one", true},
		{"B", "2", true},
		// declare -x C after C="3" keeps the value, as in bash.
		{"C", "3", true},
		{"D", "", false},
	} {
		if v, ok := ev.Get(tt.name); v != tt.value || ok != tt.ok {
			t.Errorf("Get(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.value, tt.ok)
		}
	}
	want := []string{"A=one", "C=3", "B=2"}
	if got := ev.Environ(); !reflect.DeepEqual(got, want) {
		t.Errorf("Environ() = %q, want %q", got, want)
	}
}

func TestShell(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{`declare -x SHELL="/nix/store/x-bash/bin/bash"`, "/nix/store/x-bash/bin/bash", nil},
		{`declare -x PATH="/bin"`, "", ErrNoShell},
		{`declare -x SHELL`, "", ErrNoShell},
		{`declare -x SHELL=""`, "", ErrNoShell},
		{`declare -x SHELL="bash"`, "", ErrShellNotAbsolute},
		{`declare -x SHELL="./bash"`, "", ErrShellNotAbsolute},
	}
	for _, tt := range tests {
		ev, err := ParseEnvVars(strings.NewReader(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ev.Shell()
		if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("%s: Shell() = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// trickyValues are values to push through real bash. Together with
// allBytes they cover every byte bash may have to quote.
var trickyValues = []string{
	"",
	"plain",
	"  leading and trailing  ",
	`a "double" 'single'`,
	`back\slash`,
	`trailing\`,
	`\\double`,
	`$HOME ${x} $(id) $$ $1 $? $`,
	"`id`",
	"line1\nline2",
	"\n",
	"\n\n",
	"ends with newline\n",
	"backslash-newline\\\nx",
	"\ttab",
	"cr\r",
	"crlf\r\n",
	"\x01\x02\x1b[31mred\x1b[0m",
	"\x7f",
	"é ☃ 日本 😀",
	"\xff\xfe",
	"\xc3",
	"\xc3(",
	"\xc2\x80 C1 control",
	"\u00a0nbsp",
	"\u200bzero width",
	"\ufeffbom",
	"\u2028line separator",
	"\ud7ff\ue000\U0010ffff",
	"\xed\xa0\x80 surrogate",
	"=",
	"a=b=c",
	"!event ^old^new",
	"*?[a-z]",
	"~user",
	"# not a comment",
	";&|<>(){}",
	"$'ansi'",
	`\x41\n\t`,
	"%s %d",
	"\"\n\"",
	"'\n'",
	"() { :; }",
	strings.Repeat("long ", 20000),
}

func allBytes() string {
	var b []byte
	for c := 1; c < 256; c++ {
		b = append(b, byte(c))
	}
	return string(b)
}

// TestExportPRoundTrip puts values into a real bash's environment, lets it
// write them with `export -p` (as stdenv does) and checks that the parser
// gets every one back exactly, in both quoting styles bash uses: the C
// locale (what a Nix build has, so all non-ASCII is octal) and UTF-8, in
// normal and POSIX mode.
func TestExportPRoundTrip(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skipf("bash is needed to produce real export -p output: %v", err)
	}
	values := append(append([]string{}, trickyValues...), allBytes())
	var env []string
	want := map[string]string{}
	for i, v := range values {
		name := fmt.Sprintf("NBS_V%03d", i)
		env = append(env, name+"="+v)
		want[name] = v
	}
	// Unset-but-exported variables and arrays can only be made inside
	// bash.
	script := `export NBS_NOVALUE; arr=(1 "2 3" $'x\ny'); export arr; declare -A h=([k]=v); export h; declare -rx NBS_RO="ro"; export -p`
	for _, locale := range []string{"C", "C.UTF-8"} {
		for _, posix := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s posix=%v", locale, posix), func(t *testing.T) {
				args := []string{"--norc", "--noprofile"}
				if posix {
					args = append(args, "--posix")
				}
				cmd := exec.Command(bash, append(args, "-c", script)...)
				cmd.Env = append([]string{"LC_ALL=" + locale}, env...)
				cmd.Stderr = os.Stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("bash: %v", err)
				}
				ev, err := ParseEnvVars(bytes.NewReader(out))
				if err != nil {
					t.Fatalf("parse bash output: %v\n%s", err, out)
				}
				for name, v := range want {
					if got, ok := ev.Get(name); !ok || got != v {
						t.Errorf("%s: got %q, %v; want %q", name, got, ok, v)
					}
				}
				if got, ok := ev.Get("NBS_RO"); !ok || got != "ro" {
					t.Errorf("NBS_RO: got %q, %v", got, ok)
				}
				found := false
				for _, v := range ev.Vars {
					switch v.Name {
					case "arr", "h":
						t.Errorf("array %s is in Vars", v.Name)
					case "NBS_NOVALUE":
						found = true
						if v.HasValue {
							t.Errorf("NBS_NOVALUE has a value %q", v.Value)
						}
					}
				}
				if !found {
					t.Errorf("NBS_NOVALUE missing")
				}
			})
		}
	}
}

// TestDecodeAgainstBash has bash itself decode quoted values, in a UTF-8
// locale, and compares. The fixed cases are the corners of bash's
// ansicstr; the random ones are lines built from the characters that
// matter to either quoting style. Lines the parser rejects are left out:
// this checks that what it accepts, it reads as bash does.
func TestDecodeAgainstBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skipf("bash is needed to compare with: %v", err)
	}
	var lines []string
	for _, s := range []string{
		`\ud800`, `\U110000`, `\U7fffffff`, `\U80000000`, `\UFFFFFFFF`, `\U0001F600`,
		`\u`, `\uzz`, `\u7f`, `\u80`, `\u0041B`, `\U000000411`, `\x`, `\x{41}`, `\x{}`, `\x{4142}`,
		`\x{41`, `\xg`, `\x4`, `\x414`, `\777`, `\0`, `a\0b`, `\x00z`, `\1234`, `\08`,
		`\c`, `\ca`, `\cA`, `\c?`, `\c\\`, `\c\\x`, `\c\a`, `\c[`, `\c` + "\xc3\xa9", `\c@`, `\c `,
		`\q`, `\"\?\'`, `\\`, `\E\e`, "a\\\nb", "\xc3\xa9\\n",
	} {
		lines = append(lines, "declare -x V=$'"+s+"'")
	}
	rng := rand.New(rand.NewSource(1))
	ansi := []string{`\`, `\`, `\`, `'`, "x", "u", "U", "c", "{", "}", "0", "1", "7", "8", "9", "a", "f", "F", "?", "n", "e", "E", "z", " ", "\n", "\xc3", "\xa9", "\xff", `"`, "$"}
	dq := []string{`\`, `\`, `"`, "$", "`", "'", "\n", "a", "n", " ", "{", "(", "\xff", "é", "!", "-"}
	for i := 0; i < 2000; i++ {
		alphabet, open, close := ansi, "$'", "'"
		if i%2 == 1 {
			alphabet, open, close = dq, `"`, `"`
		}
		var b strings.Builder
		for n := rng.Intn(12); n > 0; n-- {
			b.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		lines = append(lines, "declare -x V="+open+b.String()+close)
	}

	var file strings.Builder
	var want []string
	for _, line := range lines {
		ev, err := ParseEnvVars(strings.NewReader(line))
		if err != nil {
			continue
		}
		v, _ := ev.Get("V")
		want = append(want, v)
		// printf keeps the value exact; a NUL separates values, which
		// can contain any other byte.
		file.WriteString(line + "\nprintf '%s\\0' \"$V\"\n")
	}
	if len(want) < 1000 {
		t.Fatalf("only %d of %d lines parsed; the generator is off", len(want), len(lines))
	}
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte(file.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, "--norc", "--noprofile", script)
	cmd.Env = []string{"LC_ALL=C.UTF-8"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("bash: %v\n%s", err, stderr.Bytes())
	}
	got := strings.Split(string(out), "\x00")
	got = got[:len(got)-1]
	if len(got) != len(want) {
		t.Fatalf("bash printed %d values, want %d", len(got), len(want))
	}
	idx := 0
	for _, line := range lines {
		if _, err := ParseEnvVars(strings.NewReader(line)); err != nil {
			continue
		}
		if got[idx] != want[idx] {
			t.Errorf("%q: bash says %q, parser %q", line, got[idx], want[idx])
		}
		idx++
	}
}

// encodeVars writes vars in the simplest form the parser accepts: every
// value as $'…' with octal escapes for anything that is not printable
// ASCII. Three octal digits are always written, so a digit that follows
// cannot join the escape.
func encodeVars(vars []Var) []byte {
	var b bytes.Buffer
	for _, v := range vars {
		b.WriteString("declare -x " + v.Name)
		if v.HasValue {
			b.WriteString("=$'")
			for i := 0; i < len(v.Value); i++ {
				switch c := v.Value[i]; {
				case c == '\\' || c == '\'':
					b.WriteByte('\\')
					b.WriteByte(c)
				case c >= 0x20 && c < 0x7f:
					b.WriteByte(c)
				default:
					fmt.Fprintf(&b, `\%03o`, c)
				}
			}
			b.WriteByte('\'')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func FuzzParseEnvVars(f *testing.F) {
	for _, name := range []string{"testdata/demo-fail.env-vars", "testdata/tricky.env-vars"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`declare -x A="q\" b\\ d\$ t\` + "`" + `"`,
		"declare -x A=\"l1\nl2\"\ndeclare -x B\n",
		`declare -x A=$'\e\"\?\x41\x{4a}4\u00e9\U0001F600\ca\c?\c\\\q\x\u\0101\7\0'`,
		"export -a p=([0]=\"posix\" [1]=$'x\\ny')\nexport B='x'\n",
		"declare -rx A=\"1\"junk",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ParseEnvVars(bytes.NewReader(data))
		if err != nil {
			var perr *EnvVarsError
			if !errors.As(err, &perr) || perr.Line < 1 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		for _, v := range ev.Vars {
			if !isName(v.Name) || strings.IndexByte(v.Value, 0) >= 0 || !v.HasValue && v.Value != "" {
				t.Fatalf("bad var %v", fmtVars([]Var{v}))
			}
		}
		ev.Environ()
		ev.Shell()
		enc := encodeVars(ev.Vars)
		again, err := ParseEnvVars(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("re-parse %q: %v", enc, err)
		}
		if len(ev.Vars) != len(again.Vars) || len(ev.Vars) > 0 && !reflect.DeepEqual(ev.Vars, again.Vars) {
			t.Fatalf("round trip changed the vars:\n%v\n%v", fmtVars(ev.Vars), fmtVars(again.Vars))
		}
	})
}

// fmtVars shows vars with Go quoting, so control bytes are visible.
func fmtVars(vars []Var) []string {
	var s []string
	for _, v := range vars {
		if v.HasValue {
			s = append(s, fmt.Sprintf("%s=%q", v.Name, v.Value))
		} else {
			s = append(s, v.Name+" (no value)")
		}
	}
	return s
}
