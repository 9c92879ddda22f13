package nix

import (
	"strings"
	"testing"
)

func TestHashPlaceholder(t *testing.T) {
	// builtins.placeholder "out", as Nix prints it.
	if got, want := HashPlaceholder("out"), "/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9"; got != want {
		t.Errorf("HashPlaceholder(out) = %s, want %s", got, want)
	}
	// nix-hash --type sha256 --to-base32 of sha256("text").
	if got, want := Nix32(sha256Sum("text")), "1lf969yddshzhld7sr1vbagr07bnygg99lgl6gk5kxcnp4z9wbcq"; got != want {
		t.Errorf("Nix32 = %s, want %s", got, want)
	}
}

func envMap(b *BuildEnv) map[string]string {
	m := map[string]string{}
	for _, kv := range b.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func testDrv() *Derivation {
	out := "/nix/store/00000000000000000000000000000000-x"
	return &Derivation{
		Outputs: []Output{{Name: "out", Path: out}},
		Builder: "/nix/store/11111111111111111111111111111111-bash",
		Args:    []string{"-c", "echo " + HashPlaceholder("out")},
		Env: map[string]string{
			"name":       "x",
			"out":        out,
			"builder":    "/nix/store/11111111111111111111111111111111-bash",
			"passAsFile": "text",
			"text":       "to " + HashPlaceholder("out"),
			"PATH":       "/mine",
		},
	}
}

func TestNewBuildEnv(t *testing.T) {
	d := testDrv()
	b, err := NewBuildEnv(d, BuildEnvOptions{Version: Version{2, 8, 0}, Cores: 2})
	if err != nil {
		t.Fatal(err)
	}
	m := envMap(b)
	want := map[string]string{
		"PATH": "/mine", "HOME": "/homeless-shelter", "NIX_STORE": "/nix/store",
		"NIX_BUILD_CORES": "2", "NIX_BUILD_TOP": "/build", "TMPDIR": "/build",
		"TEMPDIR": "/build", "TMP": "/build", "TEMP": "/build", "PWD": "/build",
		"NIX_LOG_FD": "2", "TERM": "xterm-256color", "name": "x",
		"textPath": "/build/.attr-1lf969yddshzhld7sr1vbagr07bnygg99lgl6gk5kxcnp4z9wbcq",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if _, ok := m["text"]; ok {
		t.Error("a passAsFile attribute is in the environment")
	}
	if _, ok := m["NIX_OUTPUT_CHECKED"]; ok {
		t.Error("NIX_OUTPUT_CHECKED for a derivation that is not fixed-output")
	}
	if len(b.Files) != 1 || string(b.Files[0].Data) != "to /nix/store/00000000000000000000000000000000-x" {
		t.Errorf("files = %+v, want the passAsFile file with the placeholder rewritten", b.Files)
	}
	if got := strings.Join(b.Argv, " "); got != "/nix/store/11111111111111111111111111111111-bash -c echo /nix/store/00000000000000000000000000000000-x" {
		t.Errorf("argv = %s", got)
	}
	// Nix 2.3 numbers the files.
	b, _ = NewBuildEnv(d, BuildEnvOptions{Version: Version{2, 3, 16}})
	if m := envMap(b); m["textPath"] != "/build/.attr-0" {
		t.Errorf("2.3: textPath = %s", m["textPath"])
	}
}

func TestNewBuildEnvFixedOutput(t *testing.T) {
	d := testDrv()
	d.Outputs[0].HashAlgo, d.Outputs[0].Hash = "sha256", "00"
	d.Env["impureEnvVars"] = "http_proxy NOPE"
	b, err := NewBuildEnv(d, BuildEnvOptions{Version: Version{2, 8, 0}, Getenv: func(k string) (string, bool) {
		if k == "http_proxy" {
			return "http://p", true
		}
		return "", false
	}})
	if err != nil {
		t.Fatal(err)
	}
	m := envMap(b)
	if m["NIX_OUTPUT_CHECKED"] != "1" || m["http_proxy"] != "http://p" {
		t.Errorf("fixed-output env: %v", m)
	}
	if v, ok := m["NOPE"]; !ok || v != "" {
		t.Errorf("an unset impure variable is passed empty, got %q %v", v, ok)
	}
}

func TestNewBuildEnvStructured(t *testing.T) {
	d := testDrv()
	d.Env = map[string]string{"__json": `{"name":"x","n":3,"f":1.5,"b":true,"nul":null,"list":["a","it's"],"set":{"k":"v"},"nested":[["x"]],"bad-name":"y","u":"\u00e9"}`}
	b, err := NewBuildEnv(d, BuildEnvOptions{Version: Version{2, 34, 0}})
	if err != nil {
		t.Fatal(err)
	}
	m := envMap(b)
	if _, ok := m["name"]; ok {
		t.Error("structured attrs are not passed in the environment")
	}
	if m["NIX_ATTRS_SH_FILE"] != "/build/.attrs.sh" || m["NIX_ATTRS_JSON_FILE"] != "/build/.attrs.json" {
		t.Errorf("NIX_ATTRS_*: %v", m)
	}
	files := map[string]string{}
	for _, f := range b.Files {
		files[f.Name] = string(f.Data)
	}
	wantJSON := `{"b":true,"bad-name":"y","f":1.5,"list":["a","it's"],"n":3,"name":"x","nested":[["x"]],"nul":null,"outputs":{"out":"/nix/store/00000000000000000000000000000000-x"},"set":{"k":"v"},"u":"é"}`
	if files[".attrs.json"] != wantJSON {
		t.Errorf(".attrs.json =\n%s\nwant\n%s", files[".attrs.json"], wantJSON)
	}
	wantSh := "declare b=1\n" +
		"declare -a list=('a' 'it'\\''s' )\n" +
		"declare n=3\n" +
		"declare name='x'\n" +
		"declare nul=''\n" +
		"declare -A outputs=(['out']='/nix/store/00000000000000000000000000000000-x' )\n" +
		"declare -A set=(['k']='v' )\n" +
		"declare u='é'\n"
	if files[".attrs.sh"] != wantSh {
		t.Errorf(".attrs.sh =\n%s\nwant\n%s", files[".attrs.sh"], wantSh)
	}
}

func TestExportReferencesGraph(t *testing.T) {
	d := testDrv()
	a, bb := "/nix/store/22222222222222222222222222222222-a", "/nix/store/33333333333333333333333333333333-b"
	d.Env["exportReferencesGraph"] = "graph " + a + "/bin/x"
	refs := map[string][]string{a: {bb, a}, bb: nil}
	b, err := NewBuildEnv(d, BuildEnvOptions{Version: Version{2, 8, 0}, References: func(p string) ([]string, error) {
		return refs[p], nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, f := range b.Files {
		if f.Name == "graph" {
			got = string(f.Data)
		}
	}
	want := a + "\n\n2\n" + a + "\n" + bb + "\n" + bb + "\n\n0\n"
	if got != want {
		t.Errorf("graph =\n%q\nwant\n%q", got, want)
	}
	for _, bad := range []string{"odd", "../x " + a, "n /etc/passwd"} {
		d.Env["exportReferencesGraph"] = bad
		if _, err := NewBuildEnv(d, BuildEnvOptions{References: func(string) ([]string, error) { return nil, nil }}); err == nil {
			t.Errorf("exportReferencesGraph %q: no error", bad)
		}
	}
}

func FuzzNewBuildEnv(f *testing.F) {
	f.Add(`{"a":[1,2],"b":{"c":null}}`, "a b", "x /nix/store/22222222222222222222222222222222-a")
	f.Add(`[]`, "", "")
	f.Fuzz(func(t *testing.T, js, passAsFile, erg string) {
		d := testDrv()
		d.Env["passAsFile"] = passAsFile
		d.Env["exportReferencesGraph"] = erg
		opts := BuildEnvOptions{Version: Version{2, 8, 0}, References: func(string) ([]string, error) { return nil, nil },
			PathInfos: func(roots []string) ([]PathInfo, error) {
				var infos []PathInfo
				for _, r := range roots {
					infos = append(infos, PathInfo{Path: r, References: roots})
				}
				return infos, nil
			}}
		NewBuildEnv(d, opts)
		d.Env["__json"] = js
		NewBuildEnv(d, opts)
	})
}

func TestStructuredExportReferencesGraph(t *testing.T) {
	d := testDrv()
	a, bb := "/nix/store/22222222222222222222222222222222-a", "/nix/store/33333333333333333333333333333333-b"
	d.Env = map[string]string{"__json": `{"name":"x","exportReferencesGraph":{"g":["` + a + `/bin/x"],"h":"` + bb + `"}}`}
	infos := []PathInfo{
		{Path: a, NarHash: "sha256:1lf969yddshzhld7sr1vbagr07bnygg99lgl6gk5kxcnp4z9wbcq", NarSize: 10, References: []string{a, bb}},
		{Path: bb, NarHash: "sha256:0000000000000000000000000000000000000000000000000000", NarSize: 5, CA: "fixed:r:sha256:xyz"},
	}
	var asked [][]string
	for _, c := range []struct {
		v     Version
		valid string
	}{{Version{2, 8, 0}, ""}, {Version{2, 15, 0}, `,"valid":true`}} {
		b, err := NewBuildEnv(d, BuildEnvOptions{Version: c.v, PathInfos: func(roots []string) ([]PathInfo, error) {
			asked = append(asked, roots)
			return infos, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]string{}
		for _, f := range b.Files {
			files[f.Name] = string(f.Data)
		}
		objA := `{"closureSize":15,"narHash":"sha256:1lf969yddshzhld7sr1vbagr07bnygg99lgl6gk5kxcnp4z9wbcq","narSize":10,"path":"` + a + `","references":["` + a + `","` + bb + `"]` + c.valid + `}`
		objB := `{"ca":"fixed:r:sha256:xyz","closureSize":5,"narHash":"sha256:0000000000000000000000000000000000000000000000000000","narSize":5,"path":"` + bb + `","references":[]` + c.valid + `}`
		want := `{"exportReferencesGraph":{"g":["` + a + `/bin/x"],"h":"` + bb + `"},"g":[` + objA + `,` + objB + `],"h":[` + objB + `],"name":"x","outputs":{"out":"/nix/store/00000000000000000000000000000000-x"}}`
		if files[".attrs.json"] != want {
			t.Errorf("%v: .attrs.json =\n%s\nwant\n%s", c.v, files[".attrs.json"], want)
		}
		// The graphs are lists of objects, which .attrs.sh cannot hold.
		if strings.Contains(files[".attrs.sh"], "declare -a g") || strings.Contains(files[".attrs.sh"], "closureSize") {
			t.Errorf(".attrs.sh holds the graph:\n%s", files[".attrs.sh"])
		}
	}
	if len(asked) != 4 {
		t.Errorf("asked for %v", asked)
	}
	for _, bad := range []string{`{"exportReferencesGraph":{"g":["/etc"]}}`, `{"exportReferencesGraph":{"g":[1]}}`} {
		d.Env["__json"] = bad
		if _, err := NewBuildEnv(d, BuildEnvOptions{PathInfos: func([]string) ([]PathInfo, error) { return infos, nil }}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	d.Env["__json"] = `{"exportReferencesGraph":{"g":["` + a + `"]}}`
	if _, err := NewBuildEnv(d, BuildEnvOptions{PathInfos: func([]string) ([]PathInfo, error) { return infos[1:], nil }}); err == nil {
		t.Error("a closure Nix did not describe: no error")
	}
}
