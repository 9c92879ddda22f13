package sandbox

import (
	"reflect"
	"strings"
	"testing"
)

func TestViewRecord(t *testing.T) {
	v := &KeptView{Format: LayerFUSE, Lower: []Layer{
		{Path: "/tmp/nbs-1/upper", Format: LayerKernel, Dev: 1, Ino: 2, Mtime: 3},
		{Path: "/tmp/nbs-2/a\nlayer orig 1 2 3 /etc", Format: LayerFUSE, Dev: 4, Ino: 5, Mtime: 6},
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
	f.Add("upper kernel\nlayer orig 1 2 3 \"/k\\nx\"\n")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseView(s)
		if err != nil {
			return
		}
		if v.Orig().Format != LayerOrig {
			t.Fatalf("accepted %q as %+v", s, v)
		}
		for _, l := range v.Lower {
			if !strings.HasPrefix(l.Path, "/") {
				t.Fatalf("accepted %q with a relative path: %+v", s, v)
			}
		}
		again, err := parseView(formatView(v))
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("%q: round trip %+v, %v; want %+v", s, again, err, v)
		}
	})
}

// TestOriginRecord: the kept directory a session's changes were made
// from is read back as written, a newline in its path included.
func TestOriginRecord(t *testing.T) {
	for _, origin := range []string{"/tmp/nix-build-x.drv-0", "/tmp/odd\nname", `/tmp/"quoted"`} {
		dir := t.TempDir()
		if err := writeOrigin(dir, origin, nil); err != nil {
			t.Fatal(err)
		}
		k, ok := readKept(dir)
		if !ok || k.Origin != origin {
			t.Errorf("readKept after writeOrigin(%q) = %q, %v", origin, k.Origin, ok)
		}
	}
}
