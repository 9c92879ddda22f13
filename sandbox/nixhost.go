package sandbox

import (
	"runtime"
	"strconv"

	"github.com/nix-build-shell/nbs/nix"
)

// hostFacts is what the sandbox takes from the Nix installed here: the
// parts of Nix's sandbox that depend on its version and settings.
type hostFacts struct {
	seccomp    *SeccompProfile // nil: filter-syscalls = false
	noNewPrivs bool            // !allow-new-privileges
	etcMode    uint32
	shmSize    string
	extra      []PathMapping // sandbox-paths (extra-sandbox-paths is merged in by Nix)
	// version is the Nix release; cores its cores setting, the
	// NIX_BUILD_CORES of a replayed builder.
	version nix.Version
	cores   int
	// sandbox is Nix's sandbox setting (true, false, relaxed), for a
	// replay to run the way the original did.
	sandbox string
}

// latest is assumed when no nix can be asked: today's Nix.
var latest = nix.Version{Major: 2, Minor: 34, Patch: 0}

// factsFor maps a Nix version and its settings to sandbox facts, as
// Nix's src/libstore/linux/build/linux-derivation-builder.cc uses them
// (src/libstore/build/local-derivation-goal.cc in older releases): the
// chmod of /etc and the /dev/shm mount in enterChroot (runChild before
// 2.30), the rules of setupSeccomp, no_new_privs. The settings are
// declared in Nix's globals.hh (local-settings.hh from 2.34).
func factsFor(v nix.Version, s nix.Settings) (hostFacts, []error) {
	f := hostFacts{
		noNewPrivs: !s.Bool("allow-new-privileges", false),
		etcMode:    0o755,
		shmSize:    s["sandbox-dev-shm-size"],
		version:    v,
		cores:      buildCores(v, s),
		sandbox:    s["sandbox"],
	}
	// /etc became 0555 in 2.14 (and in 2.12.1, 2.13.3–2.13.6).
	if v.AtLeast(2, 14, 0) || v == (nix.Version{Major: 2, Minor: 12, Patch: 1}) ||
		(v.Major == 2 && v.Minor == 13 && v.Patch >= 3) {
		f.etcMode = 0o555
	}
	if s.Bool("filter-syscalls", true) {
		f.seccomp = &SeccompProfile{
			// fchmodat2 came to Nix in 2.22 (and 2.18.3–2.18.9). Older
			// releases let a build make set-id files through it on
			// kernels ≥ 6.6; nbs closes that hole whatever the version:
			// no build needs it, and a fidelity to a security bug
			// helps no one.
			Fchmodat2: true,
			GetXattr:  v.AtLeast(2, 24, 0),
			ListXattr: v.AtLeast(2, 35, 0),
		}
	} else if !explicitNoNewPrivs(v) {
		// Before the CVE-2026-39860 releases, no_new_privs came only
		// with the filter (SCMP_FLTATR_CTL_NNP).
		f.noNewPrivs = false
	}
	var errs []error
	for _, p := range s.List("sandbox-paths") {
		m, err := parsePathMapping(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.extra = append(f.extra, m)
	}
	return f, errs
}

// explicitNoNewPrivs: 2.31.4+, 2.32.7+, 2.33.4+, 2.34.5+ and 2.35 call
// prctl(PR_SET_NO_NEW_PRIVS) themselves.
func explicitNoNewPrivs(v nix.Version) bool {
	if v.Major != 2 || v.Minor >= 35 {
		return v.AtLeast(2, 35, 0)
	}
	min := map[int]int{31: 4, 32: 7, 33: 4, 34: 5}
	p, ok := min[v.Minor]
	return ok && v.Patch >= p
}

// buildCores is NIX_BUILD_CORES: the cores setting, whose default is the
// number of CPUs; from 2.31 a 0 also means that.
func buildCores(v nix.Version, s nix.Settings) int {
	n, err := strconv.Atoi(s["cores"])
	if err != nil || n < 0 || (n == 0 && v.AtLeast(2, 31, 0)) {
		return runtime.NumCPU()
	}
	return n
}
