package nix

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
)

// Settings is Nix's effective configuration as `nix show-config` prints
// it: one "name = value" per line.
type Settings map[string]string

// ParseSettings reads `nix show-config` / `nix config show` output (also
// the nix.conf syntax: comments and blank lines are skipped, later lines
// win).
func ParseSettings(r io.Reader) (Settings, error) {
	s := Settings{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("parse settings: line %d: want NAME = VALUE, got %q", n, line)
		}
		s[name] = strings.TrimSpace(value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse settings: %w", err)
	}
	return s, nil
}

// Bool is the boolean setting name, or def when it is unset or not a
// boolean.
func (s Settings) Bool(name string, def bool) bool {
	switch s[name] {
	case "true":
		return true
	case "false":
		return false
	}
	return def
}

// List is a space-separated list setting.
func (s Settings) List(name string) []string { return strings.Fields(s[name]) }

// Version is a Nix release.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v is major.minor.patch or newer.
func (v Version) AtLeast(major, minor, patch int) bool {
	if v.Major != major {
		return v.Major > major
	}
	if v.Minor != minor {
		return v.Minor > minor
	}
	return v.Patch >= patch
}

var versionRE = LazyRegexp(`(\d+)\.(\d+)(?:\.(\d+))?`)

// ParseVersion reads the version out of `nix --version` output such as
// "nix (Nix) 2.8.0" or "nix (Lix, like Nix) 2.91.1".
func ParseVersion(s string) (Version, error) {
	m := versionRE().FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("parse nix version %q: no version number", strings.TrimSpace(s))
	}
	var v Version
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		v.Patch, _ = strconv.Atoi(m[3])
	}
	return v, nil
}

// Host is what nbs learns about the Nix installed here.
type Host struct {
	Version  Version
	Settings Settings
	// From says where the answers came from, for --debug: the cache
	// file, or the nix commands run and why the cache had no answer.
	From string
}

// hostEntry is the cache file of ReadHost.
type hostEntry struct {
	Format int
	// Nix is the nix binary that gave the answers; Version is its own,
	// Settings also depend on Key.
	Nix      fileID
	Key      hostKey
	Version  Version
	Settings Settings
}

const hostCacheFile = "nix-host.json"

// ReadHost asks the installed nix for its version and effective
// settings, or the user's cache (UserCache) when nix would say the same.
func ReadHost(ctx context.Context) (*Host, error) { return UserCache().ReadHost(ctx) }

// ReadHost asks the installed nix for its version and effective settings
// unless c holds the answers of the same nix binary with the same
// configuration (hostKey). Old releases call the command `nix
// show-config`, new ones `nix config show`; both need the nix-command
// feature on releases where it is experimental, which
// --extra-experimental-features turns on for this call only.
func (c *Cache) ReadHost(ctx context.Context) (*Host, error) {
	bin, err := exec.LookPath("nix")
	if err != nil {
		return nil, fmt.Errorf("run nix --version: %w", err)
	}
	// The identities are taken before nix runs: a file changed while
	// it runs makes the next start ask again.
	id, idErr := identify(bin)
	key, keyErr := currentHostKey()
	var old hostEntry
	miss := errors.Join(idErr, keyErr)
	if miss == nil {
		if miss = c.load(hostCacheFile, &old); miss != nil {
			old = hostEntry{} // a file that failed half-way says nothing
		} else {
			switch {
			case old.Nix != id:
				miss = fmt.Errorf("%s is another binary", bin)
			case !reflect.DeepEqual(old.Key, key):
				miss = errors.New("the configuration changed")
			case old.Settings == nil || old.Version.Major < 2:
				miss = errors.New("no answers")
			default:
				return &Host{Version: old.Version, Settings: old.Settings, From: "cache " + c.path(hostCacheFile)}, nil
			}
		}
	}
	var ran []string
	// The same binary has the same version, whatever the configuration.
	v := old.Version
	if idErr != nil || old.Nix != id || v.Major < 2 {
		out, err := exec.CommandContext(ctx, bin, "--version").Output()
		if err != nil {
			return nil, fmt.Errorf("run nix --version: %w", err)
		}
		if v, err = ParseVersion(string(out)); err != nil {
			return nil, err
		}
		ran = append(ran, "nix --version")
	}
	args := []string{"--extra-experimental-features", "nix-command", "config", "show"}
	if !v.AtLeast(2, 20, 0) {
		args = []string{"--extra-experimental-features", "nix-command", "show-config"}
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("run nix %s: %w: %s", strings.Join(args[2:], " "), err, strings.TrimSpace(stderr.String()))
	}
	s, err := ParseSettings(bytes.NewReader(out))
	if err != nil {
		return nil, err
	}
	ran = append(ran, "nix "+strings.Join(args[2:], " "))
	from := strings.Join(ran, ", ") + " (cache: " + miss.Error() + ")"
	if idErr == nil && keyErr == nil && c.dir != "" {
		if err := c.store(hostCacheFile, hostEntry{Format: cacheFormat, Nix: id, Key: key, Version: v, Settings: s}); err != nil {
			from += " (not cached: " + err.Error() + ")"
		}
	}
	return &Host{Version: v, Settings: s, From: from}, nil
}
