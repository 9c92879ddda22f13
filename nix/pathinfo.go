package nix

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
)

// PathInfo is what the store knows of a valid path, as much of it as
// a structured-attrs build sees for exportReferencesGraph.
type PathInfo struct {
	Path string
	// NarHash is "sha256:" and the nix-base32 digest of the NAR.
	NarHash    string
	NarSize    uint64
	References []string // sorted
	// CA is the content address ("fixed:r:sha256:…"), "" for an
	// input-addressed path.
	CA string `json:",omitempty"`
}

// pathInfoEntry is the cache file of the path infos of the closure of
// Roots. Files identifies each path as it was (its inode and change
// time): a path garbage-collected and built again, maybe to other
// bytes, is another file.
type pathInfoEntry struct {
	Format int
	Roots  []string
	Infos  []PathInfo
	Files  []fileID
}

const pathInfoPrefix = "pathinfo-"

// PathInfos is the path info of every path in the closure of roots,
// sorted by path: from c, or from `nix path-info --json --recursive`,
// which it then stores in c; from says where it came from.
func (c *Cache) PathInfos(ctx context.Context, roots []string) (infos []PathInfo, from string, err error) {
	if len(roots) == 0 {
		return nil, "no store paths", nil
	}
	roots = slices.Clone(roots)
	sort.Strings(roots)
	roots = slices.Compact(roots)
	name := pathInfoPrefix + cacheKey(strings.Join(roots, "\n"))
	var e pathInfoEntry
	miss := c.load(name, &e)
	if miss == nil {
		if miss = e.check(roots); miss == nil {
			c.touch(name)
			return e.Infos, "cache " + c.path(name), nil
		}
	}
	// nix path-info is the one command that tells a path's content
	// address; nix-command is experimental up to 2.x.
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nix", append([]string{"--extra-experimental-features", "nix-command", "path-info", "--json", "--recursive", "--"}, roots...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("nix path-info --json --recursive: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	infos, err = ParsePathInfoJSON(out)
	if err != nil {
		return nil, "", fmt.Errorf("nix path-info --json: %w", err)
	}
	from = "nix path-info (cache: " + miss.Error() + ")"
	if c.dir != "" {
		e := pathInfoEntry{Format: cacheFormat, Roots: roots, Infos: infos}
		for _, i := range infos {
			id, err := identify(i.Path)
			if err != nil || id.Missing {
				return infos, from + " (not cached: " + i.Path + " is gone)", nil
			}
			e.Files = append(e.Files, id)
		}
		if err := c.store(name, e); err != nil {
			from += " (not cached: " + err.Error() + ")"
		} else {
			c.prune(pathInfoPrefix, maxCached)
		}
	}
	return infos, from, nil
}

// check says why e is not the closure of roots as it is now.
func (e *pathInfoEntry) check(roots []string) error {
	if !slices.Equal(e.Roots, roots) {
		return errors.New("another set of paths")
	}
	if len(e.Files) != len(e.Infos) {
		return errors.New("not one file per path")
	}
	have := map[string]bool{}
	for i, info := range e.Infos {
		if !IsStorePath(info.Path) || e.Files[i].Path != info.Path {
			return fmt.Errorf("%q is not the store path recorded", info.Path)
		}
		have[info.Path] = true
	}
	for _, r := range roots {
		if !have[r] {
			return fmt.Errorf("%s is missing from its own closure", r)
		}
	}
	for _, f := range e.Files {
		now, err := identify(f.Path)
		if err != nil {
			return err
		}
		if now.Missing || now.Dev != f.Dev || now.Ino != f.Ino || now.Ctime != f.Ctime {
			return fmt.Errorf("%s changed", f.Path)
		}
	}
	return nil
}

// ParsePathInfoJSON reads `nix path-info --json`: a list of objects
// with "path" (up to 2.18), or an object keyed by the path (2.19 on);
// narHash is SRI ("sha256-…", base64), Nix's own "sha256:nix32" or
// base16, made "sha256:nix32" here. It returns the infos sorted by path.
func ParsePathInfoJSON(data []byte) ([]PathInfo, error) {
	type raw struct {
		Path       string   `json:"path"`
		NarHash    string   `json:"narHash"`
		NarSize    uint64   `json:"narSize"`
		References []string `json:"references"`
		CA         *string  `json:"ca"`
	}
	var list []raw
	if err := json.Unmarshal(data, &list); err != nil {
		var byPath map[string]*raw
		if err2 := json.Unmarshal(data, &byPath); err2 != nil {
			return nil, fmt.Errorf("neither a list nor an object of path infos: %v", err)
		}
		for p, r := range byPath {
			if r == nil {
				return nil, fmt.Errorf("%s is not valid", p)
			}
			r.Path = p
			list = append(list, *r)
		}
	}
	infos := make([]PathInfo, 0, len(list))
	for _, r := range list {
		if !IsStorePath(r.Path) {
			return nil, fmt.Errorf("%q is not a store path", r.Path)
		}
		h, err := nix32Hash(r.NarHash)
		if err != nil {
			return nil, fmt.Errorf("%s: narHash: %w", r.Path, err)
		}
		refs := slices.Clone(r.References)
		for _, ref := range refs {
			if !IsStorePath(ref) {
				return nil, fmt.Errorf("%s: reference %q is not a store path", r.Path, ref)
			}
		}
		sort.Strings(refs)
		i := PathInfo{Path: r.Path, NarHash: h, NarSize: r.NarSize, References: refs}
		if r.CA != nil {
			i.CA = *r.CA
		}
		infos = append(infos, i)
	}
	sort.Slice(infos, func(a, b int) bool { return infos[a].Path < infos[b].Path })
	for a := 1; a < len(infos); a++ {
		if infos[a].Path == infos[a-1].Path {
			return nil, fmt.Errorf("%s twice", infos[a].Path)
		}
	}
	return infos, nil
}

// nix32Hash turns a SHA-256 in any of Nix's notations into
// "sha256:" and its nix-base32 digits (Hash::to_string(Base32, true)).
func nix32Hash(s string) (string, error) {
	var digest []byte
	var err error
	switch {
	case strings.HasPrefix(s, "sha256-"):
		digest, err = base64.StdEncoding.DecodeString(s[len("sha256-"):])
	case strings.HasPrefix(s, "sha256:") && len(s) == len("sha256:")+64:
		digest, err = hex.DecodeString(s[len("sha256:"):])
	case strings.HasPrefix(s, "sha256:") && len(s) == len("sha256:")+52:
		d := s[len("sha256:"):]
		for _, c := range d {
			if !strings.ContainsRune(nix32Chars, c) {
				return "", fmt.Errorf("%q is not nix-base32", s)
			}
		}
		return s, nil
	default:
		return "", fmt.Errorf("%q is not a SHA-256 hash", s)
	}
	if err != nil || len(digest) != 32 {
		return "", fmt.Errorf("%q is not a SHA-256 hash", s)
	}
	return "sha256:" + Nix32(digest), nil
}
