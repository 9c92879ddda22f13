package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/nix-build-shell/nbs/nix"
)

// keptBuild is what the failed build left and what it needs here, read
// and checked before anything is created: bad input leaves nothing
// behind.
type keptBuild struct {
	// dir is the build directory itself (Config.Dir, or the one newer
	// Nix nests in it); env is what its env-vars says.
	dir string
	env *nix.EnvVars
	// vars are env-vars and, with structured attrs, .attrs.json;
	// drvPath the failed derivation when known (findDerivation).
	vars    buildVars
	drvPath string
	// shell is env-vars' SHELL, an executable file on this machine.
	shell string
	// sandboxDir is where the build ran: NIX_BUILD_TOP, /build when
	// env-vars has none. hostTop: that is a host build directory, as a
	// build without Nix's sandbox has it, which only the build's word
	// (env-vars) says. unsandboxed: the build ran without Nix's sandbox,
	// in sandboxDir on the host, as the user or Nix's setting says
	// (decideSandbox).
	sandboxDir  string
	hostTop     bool
	unsandboxed bool
	// tools are Config.With as store paths.
	tools []string
	// above are kept changes over dir, top first, when the directory
	// entered was such changes (nbs shell KEPT; see keptChanges), and
	// origin is what a session kept with --keep was made from.
	above  []Layer
	origin string
}

// readBuild finds the build directory in dir, reads its env-vars and
// checks what the sandbox will rely on: the build's shell, where the
// build ran, the --with tools.
func readBuild(dir string, with []string) (*keptBuild, error) {
	// A link the user named (a shortcut to a kept directory) stands for
	// its target: the copy and the view open every level below it
	// without following links.
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = real
		}
	}
	changes, above, err := keptChanges(dir)
	if err != nil {
		return nil, err
	}
	if changes != nil {
		dir = changes.View.Orig().Path
	}
	buildDir, err := nix.FindBuildDir(dir)
	if err != nil {
		return nil, err
	}
	b := &keptBuild{dir: buildDir, sandboxDir: "/build", origin: buildDir, above: above}
	if changes != nil {
		b.origin = changes.Dir
	}
	envPath := layeredPath(above, buildDir, "env-vars")
	if b.env, err = nix.ReadEnvVars(envPath); err != nil {
		return nil, explainUnreadable(envPath, err)
	}
	if b.vars, err = readBuildVars(buildDir, b.env); err != nil {
		return nil, err
	}
	if b.shell, err = b.env.Shell(); err != nil {
		return nil, fmt.Errorf("%s: %w", envPath, err)
	}
	if st, err := os.Stat(b.shell); err != nil {
		return nil, fmt.Errorf("%s: SHELL is %s, which does not exist on this machine (garbage-collected? rebuild the derivation to get it back): %w", envPath, b.shell, err)
	} else if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("%s: SHELL is %s, which is not an executable file", envPath, b.shell)
	}
	if top, ok := b.env.Get("NIX_BUILD_TOP"); ok && top != "" {
		b.hostTop = ranUnsandboxed(top, buildDir)
		b.sandboxDir = top
	}
	if b.tools, err = toolPaths(with); err != nil {
		return nil, err
	}
	return b, nil
}

// mode is how a kept build is entered.
type mode int

const (
	// modeSandbox re-creates Nix's sandbox.
	modeSandbox mode = iota
	// modeHost: the build ran without Nix's sandbox; user, mount and
	// PID namespaces put the copy at the original path on the host.
	modeHost
	// modeNoNamespaces: the same where no namespace can be made (a
	// default Docker container, many CI runners): the command runs on
	// the host as it is, the copy beside the original, the build's own
	// variables pointed at it.
	modeNoNamespaces
)

func (m mode) String() string {
	return [...]string{"sandbox", "host (sandbox = false, in namespaces)", "no namespaces (sandbox = false)"}[m]
}

// chooseMode decides how b is entered as ids: a sandboxed build in the
// sandbox, an unsandboxed one in namespaces where the probe can make
// them and without any where they are refused. For that it returns the
// restriction.
//
// A sandboxed build is not probed: it has no other mode, so the
// sandbox's own start is its probe, and only a start that fails the way
// a refusal does runs the probe, to say which (refusedStart). The probe
// is a start of nbs of its own, as long as the rest of a session's.
func chooseMode(b *keptBuild, ids Owner, log *slog.Logger) (mode, *nsRestriction, error) {
	if !b.unsandboxed {
		log.Debug("mode", "mode", modeSandbox.String(), "probe", "none: the sandbox's start is the probe")
		return modeSandbox, nil, nil
	}
	m := modeHost
	sp := &spec{Unsandboxed: true}
	plain := &spec{Unsandboxed: true, NoNamespaces: true}
	r, err := namespacesRefused(procAttr(sp, ids), procAttr(plain, ids))
	if err != nil {
		return 0, nil, err
	}
	if r == nil {
		if m == modeHost {
			// The copy goes over the original directory in our own
			// mount namespace: it must be there, a real directory.
			if info, err := os.Lstat(b.sandboxDir); err != nil || !info.IsDir() {
				return 0, nil, fmt.Errorf("%s: the build ran without Nix's sandbox in %s, which is not a directory on this machine any more", filepath.Join(b.dir, "env-vars"), b.sandboxDir)
			}
		}
		log.Debug("mode", "mode", m.String())
		return m, nil, nil
	}
	log.Debug("mode", "mode", modeNoNamespaces.String(), "why", r.err.Error()+"; "+r.hint)
	return modeNoNamespaces, r, nil
}

// decideSandbox decides whether b is entered as a build that ran
// without Nix's sandbox: only when its env-vars names a host build
// directory (a sandboxed build's never does) and the user (c.Sandbox) or
// Nix's setting says so (sandboxOff). env-vars alone never does: the
// build wrote it, and a build that ran in the sandbox could name a host
// directory there to have its env-vars sourced, and its code run, on the
// host by whoever enters it. Such a build is entered in the sandbox,
// with a word on how to ask for the host. facts are Nix's, read only
// for a build that claims the host (nil otherwise). Then a build
// directory that stays in the sandbox is checked: the build wrote it,
// and it must not put /build where the sandbox's own mounts go.
func decideSandbox(ctx context.Context, c Config, b *keptBuild, log *slog.Logger) (*hostFacts, error) {
	var facts *hostFacts
	if b.hostTop {
		f := readHostFacts(ctx, log)
		facts = &f
		var why string
		b.unsandboxed, why = sandboxOff(c.Sandbox, f.sandbox, func() bool {
			// Only a derivation the user's nbs build named: one that
			// env-vars leads to is the build's word again.
			if c.Drv == "" {
				return false
			}
			d, err := nix.ReadDerivation(c.Drv)
			return err == nil && noChroot(d)
		})
		if b.unsandboxed {
			log.Debug("the build ran without Nix's sandbox", "because", why)
		} else {
			log.Warn("the kept env-vars names the host build directory " + b.sandboxDir + ", but Nix's sandbox setting says the build ran in the sandbox: " +
				"nbs enters it in one (nbs shell --no-sandbox enters it on the host, if it really ran there)")
		}
	}
	if !b.unsandboxed {
		if err := checkBuildDir(b.sandboxDir); err != nil {
			return nil, fmt.Errorf("%s: NIX_BUILD_TOP: %w", filepath.Join(b.dir, "env-vars"), err)
		}
	}
	return facts, nil
}

// sandboxOff says whether a build ran without Nix's sandbox, and how nbs
// knows: from the sandbox setting of the build's command line (nbs
// build's --option sandbox false or --no-sandbox, nbs shell's and nbs
// replay's --no-sandbox: the user's own word) or else Nix's. Nix uses
// its sandbox when sandbox is true, or relaxed and the derivation sets
// no __noChroot (LocalDerivationGoal::startBuilder, 2.8;
// DerivationBuilderImpl from 2.29); noChroot tells the latter.
func sandboxOff(cmdline, setting string, noChroot func() bool) (off bool, why string) {
	from := "sandbox = "
	if cmdline != "" {
		setting, from = cmdline, "its command line gives sandbox = "
	}
	switch setting {
	case "false":
		return true, from + setting
	case "relaxed":
		if noChroot() {
			return true, from + setting + " and the derivation sets __noChroot"
		}
	}
	return false, ""
}

// ranUnsandboxed tells from NIX_BUILD_TOP whether the build ran without
// Nix's sandbox: its build directory was then the host's own, the very
// directory Nix kept (one nix.ParseBuildDir recognises), instead of
// sandbox-build-dir.
func ranUnsandboxed(top, keptDir string) bool {
	if top == keptDir {
		return true
	}
	_, ok := nix.ParseBuildDir(top)
	return top != "/build" && ok
}

// explainUnreadable says precisely why env-vars cannot be read: recent
// nixpkgs writes it 0600 for the build user, and some Nix releases leave
// the kept directory's top root-only.
func explainUnreadable(path string, err error) error {
	if !errors.Is(err, fs.ErrPermission) {
		return err
	}
	// Find the first path component we may not pass or read.
	for p := path; p != "/" && p != "."; p = filepath.Dir(p) {
		info, serr := os.Stat(p)
		if serr != nil {
			continue
		}
		mode := unixAccess(p, info.IsDir())
		if mode == nil {
			continue
		}
		st := info.Sys().(*syscall.Stat_t)
		return fmt.Errorf("%w: cannot read %s: %v (owned by %s, mode %#o); Nix's build user owns it",
			ErrUnreadable, p, mode, userName(st.Uid), info.Mode().Perm())
	}
	return fmt.Errorf("%w: %v", ErrUnreadable, err)
}

func unixAccess(p string, dir bool) error {
	mode := uint32(4) // R_OK
	if dir {
		mode = 1 | 4 // X_OK|R_OK
	}
	return syscall.Access(p, mode)
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return strconv.Itoa(int(uid))
}

// readHostFacts asks the local Nix for its version and settings; without
// a usable nix, today's Nix defaults apply.
func readHostFacts(ctx context.Context, log *slog.Logger) hostFacts {
	v, settings := latest, nix.Settings{}
	if h, err := nix.ReadHost(ctx); err != nil {
		log.Debug("cannot ask nix for its settings; using defaults of Nix "+latest.String(), "err", err)
	} else {
		v, settings = h.Version, h.Settings
		log.Debug("nix", "version", v.String(), "from", h.From)
	}
	f, errs := factsFor(v, settings)
	for _, err := range errs {
		log.Warn("ignoring a sandbox-paths entry", "err", err)
	}
	return f
}
