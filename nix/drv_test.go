package nix

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	bashPath = "/nix/store/gsmjp5dzhqrpk3ffx5p6d567nx3xzsag-bash"
)

// TestReadDerivationReal reads .drv files nix-instantiate 2.8 wrote for the
// .nix files next to them.
func TestReadDerivationReal(t *testing.T) {
	d, err := ReadDerivation("testdata/demo-fail.drv")
	if err != nil {
		t.Fatal(err)
	}
	want := &Derivation{
		Outputs:   []Output{{Name: "out", Path: "/nix/store/hwijnk91dzpjnh2ikywrj5jp1kvbgj55-demo-fail"}},
		InputDrvs: map[string][]string{},
		InputSrcs: []string{"/nix/store/93hswik0brc6ppfajxk7zb4h1hkh5cb6-busybox", bashPath},
		Platform:  "x86_64-linux",
		Builder:   bashPath,
		Args: []string{"-c", "/nix/store/93hswik0brc6ppfajxk7zb4h1hkh5cb6-busybox mkdir -p /build/src/sub; cd /build/src\n" +
			"echo hello > file.txt\n" +
			"export SHELL=/nix/store/gsmjp5dzhqrpk3ffx5p6d567nx3xzsag-bash\n" +
			"export PATH=/path-not-set\n" +
			"export -p > /build/env-vars\n" +
			"echo building in $PWD >&2\n" +
			"exit 3\n"},
		Env: map[string]string{
			"builder": bashPath,
			"name":    "demo-fail",
			"out":     "/nix/store/hwijnk91dzpjnh2ikywrj5jp1kvbgj55-demo-fail",
			"system":  "x86_64-linux",
		},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got  %#v\nwant %#v", d, want)
	}
	if d.IsFixedOutput() {
		t.Errorf("demo-fail is not fixed-output")
	}

	d, err = ReadDerivation("testdata/demo-multi.drv")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range d.Outputs {
		names = append(names, o.Name)
	}
	if strings.Join(names, " ") != "dev lib out" || d.IsFixedOutput() {
		t.Errorf("outputs %v, fixed %v", names, d.IsFixedOutput())
	}
	if len(d.InputDrvs) != 3 || !reflect.DeepEqual(d.InputDrvs["/nix/store/mvxhhgscxjjscy5zaypysn00v2wfimi3-demo-fod.drv"], []string{"out"}) {
		t.Errorf("InputDrvs = %v", d.InputDrvs)
	}
	if w := "tab\there \"quoted\" back\\slash\r\nnewline $dollar `tick` café ctrl\x01"; d.Env["weird"] != w {
		t.Errorf("weird = %q, want %q", d.Env["weird"], w)
	}

	for _, tt := range []struct{ file, algo, hash string }{
		{"testdata/demo-fod.drv", "sha256", "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"},
		{"testdata/demo-rfod.drv", "r:sha256", strings.Repeat("0", 64)},
	} {
		d, err = ReadDerivation(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsFixedOutput() || d.Outputs[0].HashAlgo != tt.algo || d.Outputs[0].Hash != tt.hash {
			t.Errorf("%s: outputs %+v, fixed %v", tt.file, d.Outputs, d.IsFixedOutput())
		}
	}
}

func TestReadDerivationErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "x.drv")
	_, err := ReadDerivation(missing)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("got %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.drv")
	os.WriteFile(bad, []byte(`Derive([("out"`), 0o644)
	_, err = ReadDerivation(bad)
	if want := "parse derivation " + bad + ": at byte 14: unexpected end of input, expected ','"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestDerivationAgainstNix instantiates the .nix files in testdata and
// compares the parse with `nix show-derivation`.
func TestDerivationAgainstNix(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Skipf("needs Nix: %v", err)
	}
	files, _ := filepath.Glob("testdata/*.nix")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := exec.Command("nix-instantiate", f).Output()
			if err != nil {
				// The files take bash from /bin/bash-static.
				t.Skipf("nix-instantiate %s: %v", f, err)
			}
			compareWithNix(t, strings.TrimSpace(string(out)))
		})
	}
}

// compareWithNix checks the parse of drvPath and of its inputs against
// Nix's JSON rendering.
func compareWithNix(t *testing.T, drvPath string) {
	t.Helper()
	js, err := exec.Command("nix", "--extra-experimental-features", "nix-command", "show-derivation", drvPath).Output()
	if err != nil {
		t.Skipf("nix show-derivation: %v", err)
	}
	shown, err := parseShownDerivations(js)
	if err != nil {
		t.Fatal(err)
	}
	n := shown[drvPath]
	d, err := ReadDerivation(drvPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Outputs) != len(n.Outputs) {
		t.Errorf("%s: outputs: got %v, nix says %v", drvPath, d.Outputs, n.Outputs)
	}
	for _, o := range d.Outputs {
		no := n.Outputs[o.Name]
		if o.Path != no.Path || o.HashAlgo != no.HashAlgo || o.Hash != no.Hash {
			t.Errorf("%s: output %s: got %+v, nix says %+v", drvPath, o.Name, o, no)
		}
	}
	if !reflect.DeepEqual(d.InputSrcs, n.InputSrcs) || !reflect.DeepEqual(d.InputDrvs, n.InputDrvs) ||
		d.Platform != n.System || d.Builder != n.Builder || !reflect.DeepEqual(d.Args, n.Args) ||
		!reflect.DeepEqual(d.Env, n.Env) {
		t.Errorf("%s: got %+v\nnix says %+v", drvPath, d, n)
	}
	for in := range d.InputDrvs {
		compareWithNix(t, in)
	}
}

// shownDerivation is one derivation as `nix show-derivation` printed it
// up to format version 3.
type shownDerivation struct {
	Outputs map[string]struct {
		Path, HashAlgo, Hash string
	}
	InputSrcs []string
	InputDrvs map[string][]string
	System    string
	Builder   string
	Args      []string
	Env       map[string]string
}

// parseShownDerivations reads `nix derivation show` output: a map from
// .drv path to derivation in older Nix (2.8), or, in format version 4
// (Nix 2.34), {"derivations": {NAME.drv: …}, "version": 4}, with store
// paths as base names, the inputs under "inputs", and fixed outputs as
// {"method", "hash" (SRI)} without their path. Version 4 is turned into
// the older shape.
func parseShownDerivations(js []byte) (map[string]shownDerivation, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, err
	}
	if _, ok := top["derivations"]; !ok {
		var shown map[string]shownDerivation
		err := json.Unmarshal(js, &shown)
		return shown, err
	}
	var v4 struct {
		Version     int
		Derivations map[string]struct {
			Outputs map[string]struct{ Path, Method, Hash string }
			Inputs  struct {
				Srcs []string
				Drvs map[string]struct{ Outputs []string }
			}
			System  string
			Builder string
			Args    []string
			Env     map[string]string
		}
	}
	if err := json.Unmarshal(js, &v4); err != nil {
		return nil, err
	}
	if v4.Version != 4 {
		return nil, fmt.Errorf("nix derivation show: format version %d, this test knows 4", v4.Version)
	}
	full := func(p string) string {
		if p == "" || strings.HasPrefix(p, "/") {
			return p
		}
		return "/nix/store/" + p
	}
	shown := map[string]shownDerivation{}
	for name, d := range v4.Derivations {
		s := shownDerivation{
			Outputs:   map[string]struct{ Path, HashAlgo, Hash string }{},
			InputDrvs: map[string][]string{},
			System:    d.System,
			Builder:   d.Builder,
			Args:      d.Args,
			Env:       d.Env,
		}
		for _, p := range d.Inputs.Srcs {
			s.InputSrcs = append(s.InputSrcs, full(p))
		}
		for p, in := range d.Inputs.Drvs {
			s.InputDrvs[full(p)] = in.Outputs
		}
		for o, out := range d.Outputs {
			var algo, hash string
			if out.Hash != "" {
				a, b64, ok := strings.Cut(out.Hash, "-")
				raw, err := base64.StdEncoding.DecodeString(b64)
				if !ok || err != nil {
					return nil, fmt.Errorf("%s: output %s: hash %q is not SRI", name, o, out.Hash)
				}
				algo, hash = a, hex.EncodeToString(raw)
				switch out.Method {
				case "flat":
				case "nar":
					algo = "r:" + algo
				default:
					algo = out.Method + ":" + algo
				}
			}
			path := full(out.Path)
			if path == "" {
				// Fixed outputs' paths are not shown; the
				// environment has them.
				path = d.Env[o]
			}
			s.Outputs[o] = struct{ Path, HashAlgo, Hash string }{path, algo, hash}
		}
		shown[full(name)] = s
	}
	return shown, nil
}

func TestParseDerivation(t *testing.T) {
	const p1 = "/nix/store/h5bd8s0mlj5r3pyp6c32az5v46jq0p2q-a"
	const p2 = "/nix/store/cdgihv1fkc75irax1gvx9dmxxnmkf6m0-b.drv"
	tests := []struct {
		name  string
		in    string
		want  *Derivation
		fixed bool
	}{
		{
			"minimal",
			`Derive([],[],[],"","",[],[])`,
			&Derivation{InputDrvs: map[string][]string{}, Env: map[string]string{}},
			false,
		},
		{
			"string escapes",
			`Derive([("out","` + p1 + `","","")],[],[],"x86_64-linux","builtin:fetchurl",["a\"b","c\\d","e\nf\rg\th","\x\q\$"],[("k","v\n\"\\")])` + "\n",
			&Derivation{
				Outputs:   []Output{{Name: "out", Path: p1}},
				InputDrvs: map[string][]string{},
				Platform:  "x86_64-linux",
				Builder:   "builtin:fetchurl",
				Args:      []string{"a\"b", "c\\d", "e\nf\rg\th", "xq$"},
				Env:       map[string]string{"k": "v\n\"\\"},
			},
			false,
		},
		{
			"raw bytes are kept",
			"Derive([],[],[],\"\",\"\",[\"\xff\x00\x01\xc3\xa9\n\"],[])",
			&Derivation{InputDrvs: map[string][]string{}, Env: map[string]string{}, Args: []string{"\xff\x00\x01é\n"}},
			false,
		},
		{
			"floating content-addressed (ca-derivations)",
			`Derive([("out","","r:sha256","")],[("` + p2 + `",["dev","out"])],["` + p1 + `"],"x","/b",[],[])`,
			&Derivation{
				Outputs:   []Output{{Name: "out", HashAlgo: "r:sha256"}},
				InputDrvs: map[string][]string{p2: {"dev", "out"}},
				InputSrcs: []string{p1},
				Platform:  "x", Builder: "/b",
				Env: map[string]string{},
			},
			false,
		},
		{
			"impure derivation",
			`Derive([("out","","r:sha256","impure")],[],[],"x","/b",[],[])`,
			&Derivation{Outputs: []Output{{Name: "out", HashAlgo: "r:sha256", Hash: "impure"}}, InputDrvs: map[string][]string{}, Platform: "x", Builder: "/b", Env: map[string]string{}},
			false,
		},
		{
			"fixed output not named out",
			`Derive([("bin","` + p1 + `","sha256","00")],[],[],"x","/b",[],[])`,
			&Derivation{Outputs: []Output{{Name: "bin", Path: p1, HashAlgo: "sha256", Hash: "00"}}, InputDrvs: map[string][]string{}, Platform: "x", Builder: "/b", Env: map[string]string{}},
			false,
		},
		{
			"fixed output",
			`Derive([("out","` + p1 + `","r:sha256","00")],[],[],"x","/b",[],[])`,
			&Derivation{Outputs: []Output{{Name: "out", Path: p1, HashAlgo: "r:sha256", Hash: "00"}}, InputDrvs: map[string][]string{}, Platform: "x", Builder: "/b", Env: map[string]string{}},
			true,
		},
		{
			"dynamic derivations",
			`DrvWithVersion("xp-dyn-drv",[("out","","text:sha256","")],[("` + p2 + `",(["out"],[("out",(["x"],[("x",["y"])]))])),("/nix/store/00000000000000000000000000000000-c.drv",["out"])],[],"x","/b",[],[])`,
			&Derivation{
				Outputs:   []Output{{Name: "out", HashAlgo: "text:sha256"}},
				InputDrvs: map[string][]string{p2: {"out"}, "/nix/store/00000000000000000000000000000000-c.drv": {"out"}},
				Platform:  "x", Builder: "/b",
				Env: map[string]string{},
			},
			false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDerivation([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d, tt.want) {
				t.Errorf("got  %#v\nwant %#v", d, tt.want)
			}
			if d.IsFixedOutput() != tt.fixed {
				t.Errorf("IsFixedOutput() = %v", !tt.fixed)
			}
		})
	}
}

func TestParseDerivationErrors(t *testing.T) {
	tests := []struct {
		name, in, msg string
	}{
		{"empty", "", "at byte 0: not a derivation: does not start with Derive( or DrvWithVersion("},
		{"not a drv", "#!/bin/sh\n", "not a derivation"},
		{"JSON", `{"out":1}`, "not a derivation"},
		{"unknown version", `DrvWithVersion("v2",[],[],[],"","",[],[])`, `at byte 15: unsupported derivation format version "v2"`},
		{"truncated", `Derive([("out","/a","","")],[],[],"x"`, "at byte 37: unexpected end of input, expected ','"},
		{"unterminated string", `Derive([("out","/a`, "at byte 15: unterminated string"},
		{"unterminated escape", `Derive([("out","/a\`, "at byte 15: unterminated string"},
		{"missing output field", `Derive([("out","/a","")],[],[],"","",[],[])`, `at byte 22: expected ',', found ')'`},
		{"relative input source", `Derive([],[],["a"],"","",[],[])`, `bad path "a"`},
		{"relative input drv", `Derive([],[("a.drv",["out"])],[],"","",[],[])`, `bad path "a.drv"`},
		{"relative output", `Derive([("out","a","","")],[],[],"","",[],[])`, `output "out" has a relative path "a"`},
		{"duplicate output", `Derive([("out","","",""),("out","","","")],[],[],"","",[],[])`, `duplicate output "out"`},
		{"duplicate input", `Derive([],[("/a.drv",["out"]),("/a.drv",["dev"])],[],"","",[],[])`, `duplicate input derivation "/a.drv"`},
		{"duplicate env", `Derive([],[],[],"","",[],[("a","1"),("a","2")])`, `duplicate environment variable "a"`},
		{"trailing junk", `Derive([],[],[],"","",[],[])x`, "at byte 28: unexpected data after the derivation"},
		{"two derivations", `Derive([],[],[],"","",[],[])Derive([],[],[],"","",[],[])`, "unexpected data after"},
		{"trailing comma", `Derive([],[],[],"","",["a",],[])`, `expected '"', found ']'`},
		{"spaces", `Derive([], [],[],"","",[],[])`, `expected '[', found ' '`},
		{"dynamic input without version", `Derive([],[("/a.drv",(["out"],[]))],[],"","",[],[])`, `expected '[', found '('`},
		{"nested too deep", `DrvWithVersion("xp-dyn-drv",[],[("/a.drv",` + strings.Repeat(`([],[("o",`, 100), "nested deeper than 64 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDerivation([]byte(tt.in))
			if err == nil || !strings.HasPrefix(err.Error(), "parse derivation: ") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %v, want an error containing %q", err, tt.msg)
			}
		})
	}
}

func FuzzParseDerivation(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.drv")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`DrvWithVersion("xp-dyn-drv",[("out","","text:sha256","")],[("/a.drv",(["out"],[("out",(["x"],[("x",["y"])]))]))],[],"x","/b",[],[])`))
	f.Add([]byte(`Derive([("out","/a","r:sha256","impure")],[],[],"x","/b",["\x\"\\\n"],[("a","b")])`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDerivation(data)
		if err != nil {
			return
		}
		d.IsFixedOutput()
		again, err := ParseDerivation(d.Unparse())
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, d.Unparse())
		}
		if !reflect.DeepEqual(normalize(d), normalize(again)) {
			t.Fatalf("round trip changed the derivation:\n%#v\n%#v", d, again)
		}
	})
}

// normalize makes empty slices nil, which the round trip may swap.
func normalize(d *Derivation) *Derivation {
	c := *d
	if len(c.Args) == 0 {
		c.Args = nil
	}
	if len(c.InputSrcs) == 0 {
		c.InputSrcs = nil
	}
	c.InputDrvs = map[string][]string{}
	for k, v := range d.InputDrvs {
		if len(v) == 0 {
			v = nil
		}
		c.InputDrvs[k] = v
	}
	return &c
}

// TestBasic: the input derivations' outputs become input sources, the
// rest stays, and the result reads back as written.
func TestBasic(t *testing.T) {
	dir := t.TempDir()
	in := &Derivation{
		Outputs:   []Output{{Name: "dev", Path: "/nix/store/b-in-dev"}, {Name: "out", Path: "/nix/store/a-in"}},
		InputDrvs: map[string][]string{},
		Platform:  "x86_64-linux", Builder: "/b", Env: map[string]string{},
	}
	inDrv := filepath.Join(dir, "x-in.drv")
	if err := os.WriteFile(inDrv, in.Unparse(), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &Derivation{
		Outputs:   []Output{{Name: "out", Path: "/nix/store/o-x"}},
		InputDrvs: map[string][]string{inDrv: {"out"}},
		InputSrcs: []string{"/nix/store/s-src", "/nix/store/a-in"},
		Platform:  "x86_64-linux", Builder: "/nix/store/s-src/bash", Args: []string{"-e", "a\"b\n"},
		Env: map[string]string{"name": "x", "in": "/nix/store/a-in"},
	}
	b, err := d.Basic()
	if err != nil {
		t.Fatal(err)
	}
	if len(b.InputDrvs) != 0 || !reflect.DeepEqual(b.InputSrcs, []string{"/nix/store/a-in", "/nix/store/s-src"}) {
		t.Errorf("inputs: %v %v", b.InputDrvs, b.InputSrcs)
	}
	if len(d.InputDrvs) != 1 {
		t.Errorf("Basic changed d: %v", d.InputDrvs)
	}
	again, err := ParseDerivation(b.Unparse())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, b) {
		t.Errorf("read back:\n%#v\n%#v", again, b)
	}

	d.InputDrvs = map[string][]string{filepath.Join(dir, "missing.drv"): {"out"}}
	if _, err := d.Basic(); err == nil {
		t.Error("an unreadable input derivation: no error")
	}
}
