package nix

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
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

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?`)

// ParseVersion reads the version out of `nix --version` output such as
// "nix (Nix) 2.8.0" or "nix (Lix, like Nix) 2.91.1".
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
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
}

// ReadHost asks the installed nix for its version and effective settings.
// Old releases call the command `nix show-config`, new ones `nix config
// show`; both need the nix-command feature on releases where it is
// experimental, which --extra-experimental-features turns on for this
// call only.
func ReadHost(ctx context.Context) (*Host, error) {
	out, err := exec.CommandContext(ctx, "nix", "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("run nix --version: %w", err)
	}
	v, err := ParseVersion(string(out))
	if err != nil {
		return nil, err
	}
	args := []string{"--extra-experimental-features", "nix-command", "config", "show"}
	if !v.AtLeast(2, 20, 0) {
		args = []string{"--extra-experimental-features", "nix-command", "show-config"}
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nix", args...)
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("run nix %s: %w: %s", strings.Join(args[2:], " "), err, strings.TrimSpace(stderr.String()))
	}
	s, err := ParseSettings(bytes.NewReader(out))
	if err != nil {
		return nil, err
	}
	return &Host{Version: v, Settings: s}, nil
}
