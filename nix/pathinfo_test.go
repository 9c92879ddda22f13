package nix

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParsePathInfoJSON(t *testing.T) {
	a, b := "/nix/store/22222222222222222222222222222222-a", "/nix/store/33333333333333333333333333333333-b"
	want := []PathInfo{
		{Path: a, NarHash: "sha256:1hi6zdml4zsz9pjv9nb027f9bi75h1ki0irrfvjiwf3095j2hf58", NarSize: 2051520, References: []string{a, b}},
		{Path: b, NarHash: "sha256:1hi6zdml4zsz9pjv9nb027f9bi75h1ki0irrfvjiwf3095j2hf58", NarSize: 1, References: []string{}, CA: "fixed:r:sha256:x"},
	}
	// Nix 2.8 (a list, SRI hashes) and 2.19+ (an object by path).
	for _, js := range []string{
		`[{"path":"` + b + `","narHash":"sha256-qDgoZElgOB7ldjlHEGeA5cSV3BFg2bTlTV9/Qmv7JsI=","narSize":1,"references":[],"ca":"fixed:r:sha256:x"},` +
			`{"path":"` + a + `","narHash":"sha256-qDgoZElgOB7ldjlHEGeA5cSV3BFg2bTlTV9/Qmv7JsI=","narSize":2051520,"references":["` + b + `","` + a + `"],"deriver":"x","ultimate":true}]`,
		`{"` + a + `":{"narHash":"sha256:1hi6zdml4zsz9pjv9nb027f9bi75h1ki0irrfvjiwf3095j2hf58","narSize":2051520,"references":["` + a + `","` + b + `"],"ca":null},` +
			`"` + b + `":{"narHash":"sha256:a83828644960381ee5763947106780e5c495dc1160d9b4e54d5f7f426bfb26c2","narSize":1,"references":[],"ca":"fixed:r:sha256:x"}}`,
	} {
		got, err := ParsePathInfoJSON([]byte(js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", js, got, want)
		}
	}
	for _, bad := range []string{
		``, `3`, `[{"path":"/etc","narHash":"sha256-qDgoZElgOB7ldjlHEGeA5cSV3BFg2bTlTV9/Qmv7JsI="}]`,
		`[{"path":"` + a + `","narHash":"md5-x"}]`,
		`[{"path":"` + a + `","narHash":"sha256-qDgo"}]`,
		`{"` + a + `":null}`,
		`[{"path":"` + a + `","narHash":"sha256:1hi6zdml4zsz9pjv9nb027f9bi75h1ki0irrfvjiwf3095j2hf58","references":["../x"]}]`,
		`[{"path":"` + a + `","narHash":"sha256:1hi6zdml4zsz9pjv9nb027f9bi75h1ki0irrfvjiwf3095j2hf58"},{"path":"` + a + `","narHash":"sha256:1hi6zdml4zsz9pjv9nb027f9bi75h1ki0irrfvjiwf3095j2hf58"}]`,
	} {
		if _, err := ParsePathInfoJSON([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParsePathInfoJSON(f *testing.F) {
	f.Add(`[{"path":"/nix/store/22222222222222222222222222222222-a","narHash":"sha256-qDgoZElgOB7ldjlHEGeA5cSV3BFg2bTlTV9/Qmv7JsI=","narSize":1,"references":[]}]`)
	f.Add(`{"/nix/store/22222222222222222222222222222222-a":{"narHash":"sha256:1hi6zdml4zsz9pjv9nb027f9bi75h1ki0irrfvjiwf3095j2hf58"}}`)
	f.Fuzz(func(t *testing.T, js string) {
		infos, err := ParsePathInfoJSON([]byte(js))
		if err != nil {
			return
		}
		for _, i := range infos {
			if !IsStorePath(i.Path) || len(i.NarHash) != len("sha256:")+52 {
				t.Errorf("accepted %+v", i)
			}
		}
	})
}

func TestPathInfoEntryCheck(t *testing.T) {
	entries, _ := os.ReadDir(StoreDir)
	var p string
	for _, e := range entries {
		if q := StoreDir + "/" + e.Name(); IsStorePath(q) && !strings.HasSuffix(q, ".lock") {
			p = q
			break
		}
	}
	if p == "" {
		t.Skip("no store path on this machine")
	}
	id, err := identify(p)
	if err != nil {
		t.Fatal(err)
	}
	good := pathInfoEntry{Format: cacheFormat, Roots: []string{p}, Infos: []PathInfo{{Path: p}}, Files: []fileID{id}}
	if err := good.check([]string{p}); err != nil {
		t.Errorf("the entry as stored: %v", err)
	}
	for name, e := range map[string]pathInfoEntry{
		"other roots":  {Roots: []string{p + "x"}, Infos: good.Infos, Files: good.Files},
		"no files":     {Roots: good.Roots, Infos: good.Infos},
		"another file": {Roots: good.Roots, Infos: good.Infos, Files: []fileID{{Path: p, Dev: id.Dev, Ino: id.Ino + 1, Ctime: id.Ctime}}},
		"changed":      {Roots: good.Roots, Infos: good.Infos, Files: []fileID{{Path: p, Dev: id.Dev, Ino: id.Ino, Ctime: id.Ctime + 1}}},
		"not a root":   {Roots: good.Roots, Infos: []PathInfo{{Path: StoreDir + "/00000000000000000000000000000000-x"}}, Files: []fileID{{Path: StoreDir + "/00000000000000000000000000000000-x"}}},
	} {
		if err := e.check([]string{p}); err == nil {
			t.Errorf("%s: a hit", name)
		}
	}
}
