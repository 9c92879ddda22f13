package nix

import (
	"reflect"
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
