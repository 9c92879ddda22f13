package sandbox

import (
	"fmt"
	"sort"
	"time"
)

// Garbage is a directory nbs gc may remove: a build directory Nix kept
// (NixOS/nix#100: its owner, Nix's build user, is the only one who could)
// or a copy nbs shell --keep kept.
type Garbage struct {
	// Path is what is removed: the kept directory's top (nix-PID-N
	// holding build/), or the kept copy's work directory.
	Path string
	// Dir is what nbs list shows: the directory holding env-vars, or
	// the copy itself.
	Dir  string
	Copy bool
	// Name is the derivation's name ("" when unknown), Time the build's
	// last phase (or when the copy was kept).
	Name string
	Time time.Time
	// UID owns Path; removing it needs root unless it is the caller's.
	UID int
	// Busy says what uses it ("" when nothing does): an nbs session,
	// a build still running, a process inside it.
	Busy string
	// Under are the kept changes (work directories of sessions kept
	// with a copy-on-write view) that lie on it: it goes only with
	// them.
	Under []string
}

// GCPolicy is what nbs gc was asked to keep.
type GCPolicy struct {
	// OlderThan: only what is older than this is removed (0: anything).
	OlderThan time.Duration
	// Keep: the Keep newest kept directories, and the Keep newest kept
	// copies, stay.
	Keep int
}

// Verdict is what nbs gc does with one Garbage, and why.
type Verdict struct {
	Garbage
	// Remove: it goes; otherwise Reason says why it stays.
	Remove bool
	Reason string
	// NeedsRoot: it would go, but it belongs to another user.
	NeedsRoot bool
}

// Decide applies p to items at now for a caller of uid euid (0: root),
// newest first, kept directories before kept copies. Nothing busy is
// ever removed, whatever the policy; the Keep newest are counted among
// all of a kind, busy ones included, so that the newest failure stays
// also while a build of it runs again.
func (p GCPolicy) Decide(items []Garbage, now time.Time, euid int) []Verdict {
	sorted := append([]Garbage(nil), items...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Copy != sorted[j].Copy {
			return !sorted[i].Copy
		}
		return sorted[i].Time.After(sorted[j].Time)
	})
	out := make([]Verdict, 0, len(sorted))
	seen := map[bool]int{} // per kind: how many newer ones came before
	for _, g := range sorted {
		v := Verdict{Garbage: g}
		n := seen[g.Copy]
		seen[g.Copy]++
		switch {
		case g.Busy != "":
			v.Reason = "in use: " + g.Busy
		case n < p.Keep:
			v.Reason = fmt.Sprintf("one of the %d newest (--keep)", p.Keep)
		case p.OlderThan > 0 && g.Time.IsZero():
			v.Reason = "its age is unknown (--older-than)"
		case p.OlderThan > 0 && now.Sub(g.Time) < p.OlderThan:
			v.Reason = "newer than " + p.OlderThan.String() + " (--older-than)"
		case euid != 0 && g.UID != euid:
			v.NeedsRoot = true
			v.Reason = "belongs to another user (Nix's build user)"
		default:
			v.Remove = true
		}
		out = append(out, v)
	}
	// What kept changes lie on stays while they do: until nothing
	// changes, an item that would go stays if something kept over it
	// stays.
	for changed := true; changed; {
		changed = false
		going := map[string]bool{}
		for _, v := range out {
			if v.Remove {
				going[v.Path] = true
			}
		}
		for i := range out {
			v := &out[i]
			if !v.Remove && !v.NeedsRoot {
				continue
			}
			for _, u := range v.Under {
				if !going[u] {
					v.Remove, v.NeedsRoot = false, false
					v.Reason = "the changes kept in " + u + " lie on it; nbs gc " + u + " first"
					changed = true
					break
				}
			}
		}
	}
	return out
}
