package sandbox

import (
	"strings"
	"testing"
	"time"
)

func TestGCDecide(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	items := []Garbage{
		{Path: "/tmp/old", Time: ago(30 * 24 * time.Hour), UID: 30001},
		{Path: "/tmp/new", Time: ago(time.Hour), UID: 30001},
		{Path: "/tmp/busy", Time: ago(40 * 24 * time.Hour), UID: 1000, Busy: "an nbs session has entered it"},
		{Path: "/tmp/mine", Time: ago(10 * 24 * time.Hour), UID: 1000},
		{Path: "/tmp/unknown", UID: 1000},
		{Path: "/tmp/nbs-1", Copy: true, Time: ago(2 * time.Hour), UID: 1000},
		{Path: "/tmp/nbs-2", Copy: true, Time: ago(20 * 24 * time.Hour), UID: 1000},
	}
	cases := []struct {
		name   string
		policy GCPolicy
		euid   int
		want   map[string]string // path: "remove", "root" or the start of the reason
	}{
		{"root removes all but the busy", GCPolicy{}, 0, map[string]string{
			"/tmp/old": "remove", "/tmp/new": "remove", "/tmp/busy": "in use", "/tmp/mine": "remove",
			"/tmp/unknown": "remove", "/tmp/nbs-1": "remove", "/tmp/nbs-2": "remove"}},
		{"a user removes their own", GCPolicy{}, 1000, map[string]string{
			"/tmp/old": "root", "/tmp/new": "root", "/tmp/busy": "in use", "/tmp/mine": "remove",
			"/tmp/unknown": "remove", "/tmp/nbs-1": "remove", "/tmp/nbs-2": "remove"}},
		{"older than a week", GCPolicy{OlderThan: 7 * 24 * time.Hour}, 0, map[string]string{
			"/tmp/old": "remove", "/tmp/new": "newer than", "/tmp/busy": "in use", "/tmp/mine": "remove",
			"/tmp/unknown": "its age is unknown", "/tmp/nbs-1": "newer than", "/tmp/nbs-2": "remove"}},
		// The busy one is the oldest: it counts among the kept ones'
		// ranks all the same.
		{"keep the two newest of each kind", GCPolicy{Keep: 2}, 0, map[string]string{
			"/tmp/new": "one of the 2 newest", "/tmp/mine": "one of the 2 newest", "/tmp/old": "remove",
			"/tmp/busy": "in use", "/tmp/unknown": "remove", "/tmp/nbs-1": "one of the 2 newest", "/tmp/nbs-2": "one of the 2 newest"}},
		{"both", GCPolicy{Keep: 1, OlderThan: 15 * 24 * time.Hour}, 0, map[string]string{
			"/tmp/new": "one of the 1 newest", "/tmp/mine": "newer than", "/tmp/old": "remove",
			"/tmp/busy": "in use", "/tmp/unknown": "its age is unknown", "/tmp/nbs-1": "one of the 1 newest", "/tmp/nbs-2": "remove"}},
	}
	for _, tc := range cases {
		vs := tc.policy.Decide(items, now, tc.euid)
		if len(vs) != len(items) {
			t.Fatalf("%s: %d verdicts for %d items", tc.name, len(vs), len(items))
		}
		for i, v := range vs {
			if i > 0 && !vs[i-1].Copy && !v.Copy && vs[i-1].Time.Before(v.Time) {
				t.Errorf("%s: %s before the newer %s", tc.name, vs[i-1].Path, v.Path)
			}
			if i > 0 && vs[i-1].Copy && !v.Copy {
				t.Errorf("%s: a copy before the kept directory %s", tc.name, v.Path)
			}
			want := tc.want[v.Path]
			switch {
			case want == "remove":
				if !v.Remove || v.NeedsRoot {
					t.Errorf("%s: %s stays (%s); want it removed", tc.name, v.Path, v.Reason)
				}
			case want == "root":
				if v.Remove || !v.NeedsRoot {
					t.Errorf("%s: %s: remove %v, needs root %v; want needs root", tc.name, v.Path, v.Remove, v.NeedsRoot)
				}
			default:
				if v.Remove || len(v.Reason) < len(want) || v.Reason[:len(want)] != want {
					t.Errorf("%s: %s: remove %v, reason %q; want kept: %s", tc.name, v.Path, v.Remove, v.Reason, want)
				}
			}
		}
	}
}

// TestGCDecideUnder: what kept changes lie on goes only with them, down
// a chain of kept changes.
func TestGCDecideUnder(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	items := []Garbage{
		{Path: "/tmp/nix-build-a.drv-0", UID: 0, Time: now, Under: []string{"/tmp/nbs-1", "/tmp/nbs-2"}},
		{Path: "/tmp/nbs-1", Copy: true, UID: 0, Time: now.Add(-2 * time.Hour), Under: []string{"/tmp/nbs-2"}},
		{Path: "/tmp/nbs-2", Copy: true, UID: 0, Time: now.Add(-time.Hour)},
	}
	verdict := func(vs []Verdict, p string) Verdict {
		for _, v := range vs {
			if v.Path == p {
				return v
			}
		}
		t.Fatalf("no verdict for %s", p)
		return Verdict{}
	}
	all := GCPolicy{}.Decide(items, now, 0)
	for _, it := range items {
		if !verdict(all, it.Path).Remove {
			t.Errorf("everything going: %s stays: %s", it.Path, verdict(all, it.Path).Reason)
		}
	}
	// The newest kept changes stay (--keep 1): what they lie on stays.
	some := GCPolicy{Keep: 1}.Decide(items[1:], now, 0)
	if v := verdict(some, "/tmp/nbs-2"); v.Remove {
		t.Errorf("the newest copy goes with --keep 1")
	}
	if v := verdict(some, "/tmp/nbs-1"); v.Remove || !strings.Contains(v.Reason, "lie on it") {
		t.Errorf("removed kept changes that /tmp/nbs-2 lies on: %+v", v)
	}
	items[2].Busy = "an nbs session holds it"
	busy := GCPolicy{}.Decide(items, now, 0)
	for _, p := range []string{"/tmp/nix-build-a.drv-0", "/tmp/nbs-1"} {
		if v := verdict(busy, p); v.Remove || !strings.Contains(v.Reason, "/tmp/nbs-2") {
			t.Errorf("%s under busy kept changes: %+v", p, v)
		}
	}
}
