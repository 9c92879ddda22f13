package nix

import (
	"reflect"
	"strings"
	"testing"
)

const (
	h1 = "gsmjp5dzhqrpk3ffx5p6d567nx3xzsag"
	h2 = "hwijnk91dzpjnh2ikywrj5jp1kvbgj55"
)

func TestIsStorePath(t *testing.T) {
	tests := []struct {
		p    string
		want bool
	}{
		{"/nix/store/" + h1 + "-bash", true},
		{"/nix/store/" + h1 + "-bash-5.2p15", true},
		{"/nix/store/" + h1 + "-a+b._?=-", true},
		{"/nix/store/" + h1 + "-.dotfile", true},
		{"/nix/store/" + h1 + "-" + strings.Repeat("n", 211), true},
		{"/nix/store/" + h1 + "-" + strings.Repeat("n", 212), false},
		{"/nix/store/" + h1 + "-", false},
		{"/nix/store/" + h1, false},
		{"/nix/store/" + h1 + "_bash", false},
		{"/nix/store/" + h1 + "-bash/bin/bash", false},
		{"/nix/store/" + h1 + "-ba sh", false},
		{"/nix/store/" + h1 + "-bäsh", false},
		{"/nix/store/" + h1[:31] + "-bash", false},
		{"/nix/store/" + h1 + "x-bash", false},
		{"/nix/store/" + strings.Replace(h1, "g", "e", 1) + "-bash", false}, // e, o, t, u are not nix-base32
		{"/nix/store/" + strings.Replace(h1, "g", "G", 1) + "-bash", false},
		{"/nix/store/" + strings.Replace(h1, "g", "t", 1) + "-bash", false},
		{"/nix/store//" + h1 + "-bash", false},
		{"/nix/store", false},
		{"/nix/store/", false},
		{"nix/store/" + h1 + "-bash", false},
		{"/gnu/store/" + h1 + "-bash", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsStorePath(tt.p); got != tt.want {
			t.Errorf("IsStorePath(%q) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestStorePathsIn(t *testing.T) {
	p1 := "/nix/store/" + h1 + "-bash"
	p2 := "/nix/store/" + h2 + "-demo-fail"
	tests := []struct {
		s    string
		want []string
	}{
		{"", nil},
		{"/path-not-set", nil},
		{p1, []string{p1}},
		{p1 + "/bin/bash", []string{p1}},
		{"PATH=" + p1 + "/bin:" + p2 + "/bin:" + p1 + "/sbin", []string{p1, p2}},
		{"-I" + p2 + "/include -L" + p1 + "/lib", []string{p2, p1}},
		{`"` + p1 + `"`, []string{p1}},
		{p1 + " " + p1, []string{p1}},
		{p1 + p2, []string{p1, p2}}, // a name ends at "/"
		{"/nix/store//nix/store/" + h1 + "-bash", []string{p1}},
		{"/nix/store/" + h1, nil},
		{"/nix/store/" + h1 + "-", nil},
		{"/nix/store/short-name " + p2, []string{p2}},
		{"/nix/store/" + h1 + "-" + strings.Repeat("n", 300), nil},
		// Name characters include '=' and '?', so they run on.
		{p1 + "=x", []string{p1 + "=x"}},
		{p1 + "\n" + p2, []string{p1, p2}},
		{"/foo" + p1, []string{p1}},
	}
	for _, tt := range tests {
		if got := StorePathsIn(tt.s); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("StorePathsIn(%q) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

// TestStorePathsInEnvVars is the use nbs has for it: what store paths the
// real env-vars sample needs mounted.
func TestStorePathsInEnvVars(t *testing.T) {
	ev, err := ReadEnvVars("testdata/demo-fail.env-vars")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range ev.Environ() {
		got = append(got, StorePathsIn(kv)...)
	}
	want := []string{
		"/nix/store/gsmjp5dzhqrpk3ffx5p6d567nx3xzsag-bash",
		"/nix/store/gsmjp5dzhqrpk3ffx5p6d567nx3xzsag-bash",
		"/nix/store/hwijnk91dzpjnh2ikywrj5jp1kvbgj55-demo-fail",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzStorePathsIn(f *testing.F) {
	f.Add("PATH=/nix/store/" + h1 + "-bash/bin:/nix/store/" + h2 + "-x")
	f.Add("/nix/store//nix/store/" + h1 + "-bash")
	f.Add("/nix/store/" + h1 + "-" + strings.Repeat("n", 211))
	f.Fuzz(func(t *testing.T, s string) {
		seen := map[string]bool{}
		for _, p := range StorePathsIn(s) {
			if !IsStorePath(p) || !strings.Contains(s, p) || seen[p] {
				t.Fatalf("StorePathsIn(%q) returned %q", s, p)
			}
			seen[p] = true
		}
		if IsStorePath(s) {
			if got := StorePathsIn(s); len(got) != 1 || got[0] != s {
				t.Fatalf("StorePathsIn(%q) = %q, want the path itself", s, got)
			}
		}
	})
}

func TestStorePathOf(t *testing.T) {
	const p = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-gdb-13.1"
	for in, want := range map[string]string{p: p, p + "/bin/gdb": p, p + "/": p} {
		if got := StorePathOf(in); got != want {
			t.Errorf("StorePathOf(%q) = %q, want %q", in, got, want)
		}
	}
}
