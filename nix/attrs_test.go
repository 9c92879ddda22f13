package nix

import (
	"strings"
	"testing"
)

func TestStructuredAttrs(t *testing.T) {
	a, err := ParseStructuredAttrs([]byte(`{"name":"x-1","n":3,"outputs":{"out":"/nix/store/a-x","dev":"/nix/store/b-x-dev"},"srcs":["/nix/store/c-s",{"k":"/nix/store/d-t"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := a.String("name"); !ok || s != "x-1" {
		t.Errorf("name %q %v", s, ok)
	}
	if _, ok := a.String("n"); ok {
		t.Error("a number is a string")
	}
	if o := a.Outputs(); len(o) != 2 || o["dev"] != "/nix/store/b-x-dev" {
		t.Errorf("outputs %v", o)
	}
	if got := strings.Join(a.Strings(), " "); got != "x-1 /nix/store/b-x-dev /nix/store/a-x /nix/store/c-s /nix/store/d-t" {
		t.Errorf("strings %q", got)
	}
	for _, bad := range []string{"", "null", "[]", "{", `"s"`} {
		if _, err := ParseStructuredAttrs([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseStructuredAttrs(f *testing.F) {
	f.Add([]byte(`{"outputs":{"out":"/nix/store/a-x"},"l":[[["x"]]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseStructuredAttrs(data)
		if err != nil {
			return
		}
		a.Strings()
		a.Outputs()
		a.String("name")
	})
}

func TestLastPhase(t *testing.T) {
	log := "Running phase: unpackPhase\nx\n\x1b[0mRunning phase: buildPhase\r\nerror\nRunning phase: not a name!\n"
	if p := lastPhase(strings.NewReader(log)); p != "buildPhase" {
		t.Errorf("phase %q", p)
	}
	if p := lastPhase(strings.NewReader("no phases\n")); p != "" {
		t.Errorf("phase %q", p)
	}
}
