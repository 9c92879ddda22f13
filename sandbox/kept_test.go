package sandbox

import (
	"reflect"
	"strings"
	"testing"
)

func TestViewRecord(t *testing.T) {
	v := &KeptView{Format: LayerFUSE, Lower: []Layer{
		{Path: "/tmp/nbs-1/upper", Format: LayerKernel, Dev: 1, Ino: 2, Mtime: 3},
		{Path: "/tmp/nix build, with spaces.drv-0", Format: LayerOrig, Dev: 65024, Ino: 10287769, Mtime: 1796235994268947199},
	}}
	got, err := parseView(formatView(v))
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, v)
	}
	for _, bad := range []string{
		"",
		"upper kernel\n",
		"upper zfs\nlayer orig 1 2 3 /k\n",
		"upper kernel\nlayer orig 1 2 3 relative\n",
		"upper kernel\nlayer orig x 2 3 /k\n",
		"upper kernel\nlayer kernel 1 2 3 /u\n",
		"upper kernel\nlayer orig 1 2 3 /k\nlayer kernel 1 2 3 /u\n",
	} {
		if _, err := parseView(bad); err == nil {
			t.Errorf("parseView(%q) accepted it", bad)
		}
	}
}

func FuzzParseView(f *testing.F) {
	f.Add("upper kernel\nlayer orig 1 2 3 /k\n")
	f.Add("upper fuse\nlayer fuse 1 2 3 /u\nlayer orig 4 5 6 /k\n")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseView(s)
		if err != nil {
			return
		}
		if v.Orig().Format != LayerOrig || strings.Contains(v.Orig().Path, "\n") {
			t.Fatalf("accepted %q as %+v", s, v)
		}
		again, err := parseView(formatView(v))
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("%q: round trip %+v, %v; want %+v", s, again, err, v)
		}
	})
}
