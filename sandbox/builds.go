package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/nix-build-shell/nbs/nix"
)

// Build is a Nix build running on this machine: its builder process, the
// one Nix started (PID 1 of the build's sandbox).
type Build struct {
	PID int // host pid of the builder
	// Name is the derivation's name (the builder's $name).
	Name string
	// Drv is the derivation's .drv path, "" when it could not be told.
	Drv string
	// Out is the builder's $out.
	Out string
	// Started is when the builder started.
	Started time.Time
	// Doing is the command line of the build's newest process.
	Doing string
	// Env is the builder's environment as it started (/proc/PID/environ).
	Env []string
	// Top is the build directory as the host's root reaches it
	// (/proc/PID/root/build), for comparing with kept directories.
	Top string
}

// ErrNeedRoot: only root may enter another user's namespaces (and read
// a builder's environment).
var ErrNeedRoot = errors.New("entering another user's namespaces needs root")

func lookupEnv(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// Uses reports whether dir is the build directory of b.
func (b Build) Uses(dir string) bool {
	if b.Top == "" {
		return false
	}
	ours, err1 := os.Stat(dir)
	theirs, err2 := os.Stat(b.Top)
	return err1 == nil && err2 == nil && os.SameFile(ours, theirs)
}

// FindBuild picks the running build target names: a PID, a .drv path,
// an output path or a derivation name (as nbs list shows it). With no
// target it is the one build running; errors name what was looked for
// and what runs.
func FindBuild(builds []Build, target string) (Build, error) {
	if target == "" {
		switch len(builds) {
		case 0:
			return Build{}, errors.New("no build is running on this machine")
		case 1:
			return builds[0], nil
		}
		return Build{}, fmt.Errorf("%d builds are running (%s); name one", len(builds), describe(builds))
	}
	var match []Build
	pid, isPID := strconv.Atoi(target)
	for _, b := range builds {
		switch {
		case isPID == nil:
			if b.PID == pid {
				match = append(match, b)
			}
		case strings.HasSuffix(target, ".drv"):
			if b.Drv == target || (b.Drv != "" && path.Base(b.Drv) == path.Base(target)) || b.Name+".drv" == target {
				match = append(match, b)
			}
		case strings.HasPrefix(target, nix.StoreDir+"/"):
			if b.Out == target || outputOf(b, target) {
				match = append(match, b)
			}
		default:
			if b.Name == target {
				match = append(match, b)
			}
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		running := "no build is running"
		if len(builds) > 0 {
			running = "running: " + describe(builds)
		}
		return Build{}, fmt.Errorf("no running build %s (%s)", target, running)
	}
	return Build{}, fmt.Errorf("%d running builds match %s (%s); name one by PID", len(match), target, describe(match))
}

// outputOf: target is one of b's outputs ($outputs lists their names).
func outputOf(b Build, target string) bool {
	for _, o := range strings.Fields(lookupEnv(b.Env, "outputs")) {
		if lookupEnv(b.Env, o) == target {
			return true
		}
	}
	return false
}

func describe(builds []Build) string {
	var s []string
	for _, b := range builds {
		n := b.Name
		if n == "" {
			n = "?"
		}
		s = append(s, fmt.Sprintf("%s PID %d", n, b.PID))
	}
	return strings.Join(s, ", ")
}
