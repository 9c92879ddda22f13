package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/diff"
)

// Enter copies the kept directory, runs the command (or an interactive
// shell) in a re-created Nix sandbox over the copy, tells c.Changed what
// changed in the copy, removes the copy (with Keep, returns its path
// instead) and returns the command's exit status (128+N when it was
// killed by signal N). SIGINT, SIGTERM and SIGHUP end the sandbox and
// return a *SignalError.
func Enter(ctx context.Context, c Config) (status int, keptCopy string, err error) {
	log := c.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigc)
	var got atomic.Int32 // the signal that ended the session, set once
	go func() {
		select {
		case s := <-sigc:
			got.Store(int32(s.(syscall.Signal)))
			cancel()
		case <-ctx.Done():
		}
	}()
	interrupted := func() error {
		if sig := syscall.Signal(got.Load()); sig != 0 {
			return &SignalError{Signal: sig}
		}
		return nil
	}

	buildDir, err := nix.FindBuildDir(c.Dir)
	if err != nil {
		return 0, "", err
	}
	envPath := filepath.Join(buildDir, "env-vars")
	ev, err := nix.ReadEnvVars(envPath)
	if err != nil {
		return 0, "", explainUnreadable(envPath, err)
	}
	shell, err := ev.Shell()
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", envPath, err)
	}
	if st, err := os.Stat(shell); err != nil {
		return 0, "", fmt.Errorf("%s: SHELL is %s, which does not exist on this machine (garbage-collected? rebuild the derivation to get it back): %w", envPath, shell, err)
	} else if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return 0, "", fmt.Errorf("%s: SHELL is %s, which is not an executable file", envPath, shell)
	}
	sandboxBuildDir := "/build"
	unsandboxed := false
	if top, ok := ev.Get("NIX_BUILD_TOP"); ok && top != "" {
		if unsandboxed = ranUnsandboxed(top, buildDir); unsandboxed {
			// The copy goes over the original directory in our own
			// mount namespace: it must be there, a real directory.
			if info, err := os.Lstat(top); err != nil || !info.IsDir() {
				return 0, "", fmt.Errorf("%s: the build ran without Nix's sandbox in %s, which is not a directory on this machine any more", envPath, top)
			}
		} else if err := CheckBuildDir(top); err != nil {
			// The build wrote env-vars: its NIX_BUILD_TOP must not put
			// the copy where the sandbox's own mounts go.
			return 0, "", fmt.Errorf("%s: NIX_BUILD_TOP: %w", envPath, err)
		}
		sandboxBuildDir = top
	}
	tools, err := toolPaths(c.With)
	if err != nil {
		return 0, "", err
	}

	owner, releaseOwner, err := sandboxOwner()
	if err != nil {
		return 0, "", err
	}
	defer releaseOwner()
	var chown *Owner
	if isHostRoot() {
		chown = &owner
		// Like Nix's helper before clone: root's supplementary groups
		// must not reach the sandbox (they would grant access by group).
		if err := syscall.Setgroups(nil); err != nil {
			return 0, "", fmt.Errorf("drop supplementary groups: %w", err)
		}
	}

	base := os.TempDir()
	if chown != nil {
		if err := reachable(base, owner); err != nil {
			return 0, "", err
		}
	}
	if removed, err := CleanStale(base); err != nil {
		log.Warn("could not remove a stale copy", "err", err)
	} else if len(removed) > 0 {
		log.Debug("removed stale copies", "dirs", removed)
	}
	wd, err := newWorkDir(base, chown)
	if err != nil {
		return 0, "", err
	}
	defer func() {
		if c.Keep && err == nil {
			// Marked before the lock is let go, so that no later nbs
			// takes it for an abandoned one.
			if err = writeOrigin(wd.path, CanonicalDir(buildDir), chown); err == nil {
				keptCopy = wd.build()
				wd.lock.Close()
				return
			}
		}
		if rerr := wd.remove(); rerr != nil && err == nil {
			err = fmt.Errorf("remove copy %s: %w", wd.path, rerr)
		}
	}()

	log.Debug("copying kept directory", "from", buildDir, "to", wd.build())
	report, err := CopyTree(ctx, buildDir, wd.build(), CopyOptions{Chown: chown, Progress: c.Progress})
	var unreadable *UnreadableError
	var notCopied []string
	switch {
	case errors.As(err, &unreadable):
		notCopied = unreadable.Paths
		log.Warn(err.Error() + "; they are missing from /build (run nbs with sudo to copy them)")
	case err != nil:
		if ierr := interrupted(); ierr != nil {
			return 0, "", ierr
		}
		return 0, "", err
	}
	for _, s := range report.Skipped {
		log.Warn("not copied (cannot be re-created): " + s)
	}

	facts := readHostFacts(ctx, log)
	var storePaths []string
	if !c.FullStore {
		storePaths = storeView(ctx, c.Drv, ev, append(mappingSources(facts.extra), shell), tools, log)
	}
	// Fixed-output derivations keep the host's network in Nix (no
	// network namespace) and see its resolv.conf, services and hosts.
	_, fixedOutput := ev.Get("outputHash")
	if fixedOutput {
		log.Warn("fixed-output derivation: the sandbox shares the host's network, as Nix does for such builds")
	}
	tty := IsTerminal(c.Stdin) && IsTerminal(c.Stdout)
	spec := &Spec{
		Root: wd.root(),
		Mounts: NewPlan(PlanConfig{
			BuildDir:        wd.build(),
			SandboxBuildDir: sandboxBuildDir,
			TmpDir:          wd.tmp(),
			Shell:           shell,
			StorePaths:      storePaths,
			StoreDirSource:  wd.store(),
			KVM:             hasKVM(),
			ShmSize:         facts.shmSize,
			EtcMode:         facts.etcMode,
			Extra:           facts.extra,
			HostNetwork:     fixedOutput,
		}),
		Env:         ev.Environ(),
		Cwd:         sandboxBuildDir,
		Hostname:    "localhost",
		Domainname:  "(none)",
		HostNetwork: fixedOutput,
		TTY:         tty,
		Seccomp:     facts.seccomp,
		NoNewPrivs:  facts.noNewPrivs,
	}
	if unsandboxed {
		// What such a build saw: the host as it is, the build
		// directory at its host path, the user's own ids.
		log.Warn("this build ran without Nix's sandbox (sandbox = false); so does this shell: the host's file system, network and processes, with the build directory at " + sandboxBuildDir)
		spec.Root = "/"
		spec.Mounts = []Op{{Kind: OpBind, Source: wd.build(), Target: sandboxBuildDir}}
		spec.Unsandboxed = true
		spec.HostNetwork = true
		spec.Hostname, spec.Domainname = "", ""
	}
	load := loadCommand(buildDir, sandboxBuildDir)
	toolsPath := toolsPATH(tools)
	if len(tools) > 0 {
		log.Debug("tools added to the sandbox and PATH", "paths", strings.Join(tools, " "))
	}
	withTools := load
	if toolsPath != "" {
		withTools += "; " + toolsPath
	}
	switch {
	case c.Script != "":
		spec.Argv = []string{shell, "-c", withTools + "\n" + c.Script}
	case len(c.Command) > 0:
		spec.Argv = append([]string{shell, "-c", withTools + `; exec "$@"`, "--"}, c.Command...)
	default:
		rc := rcConfig{
			shell:    shell,
			load:     load,
			tools:    toolsPath,
			buildDir: sandboxBuildDir,
			name:     promptName(c.Drv, ev),
			color:    os.Getenv("NO_COLOR") == "",
		}
		if setup, ok := stdenvSetup(ev); ok {
			rc.stdenvSetup = setup
			rc.phases = stdenvPhases(ev)
			log.Debug("stdenv: the shell sources its setup", "setup", setup)
		}
		spec.Argv, spec.RC = interactiveShell(rc)
	}
	for _, op := range spec.Mounts {
		log.Debug("mount plan", "op", op.String())
	}

	if ierr := interrupted(); ierr != nil {
		return 0, "", ierr
	}
	p, err := Start(spec, owner, c.Stdin, c.Stdout, c.Stderr)
	if err != nil {
		return 0, "", err
	}
	stopRelay := func() {}
	if m := p.Master(); m != nil {
		_, stop, err := Relay(m, c.Stdin, c.Stdout)
		if err != nil {
			p.Kill()
			p.Wait(context.Background())
			return 0, "", fmt.Errorf("set up terminal: %w", err)
		}
		stopRelay = stop
	}
	status, err = p.Wait(ctx)
	stopRelay()
	p.Close()
	if err != nil {
		return 0, "", err
	}
	if ierr := interrupted(); ierr != nil {
		return 0, "", ierr
	}
	if c.Changed != nil {
		reportChanges(buildDir, wd.build(), notCopied, c.Changed, log)
	}
	return status, "", nil
}

// reportChanges compares the copy with the kept directory and tells
// changed what differs, if anything. Entries the copy could not include
// are not counted as removed. A comparison that fails (the sandbox may
// have made a directory unreadable) is only a debug message: the
// session itself went well.
func reportChanges(kept, copy string, notCopied []string, changed func(diff.Summary), log *slog.Logger) {
	cs, err := diff.Trees(kept, copy, diff.Options{Ignore: notCopied})
	if err != nil {
		log.Debug("cannot compare /build with the kept directory", "err", err)
		return
	}
	if s := diff.Summarize(cs); !s.Empty() {
		log.Debug("/build changed", "summary", s.String())
		changed(s)
	}
}

// readHostFacts asks the local Nix for its version and settings; without
// a usable nix, today's Nix defaults apply.
func readHostFacts(ctx context.Context, log *slog.Logger) hostFacts {
	v, settings := latest, nix.Settings{}
	if h, err := nix.ReadHost(ctx); err != nil {
		log.Debug("cannot ask nix for its settings; using defaults of Nix "+latest.String(), "err", err)
	} else {
		v, settings = h.Version, h.Settings
		log.Debug("nix", "version", v.String())
	}
	f, errs := factsFor(v, settings)
	for _, err := range errs {
		log.Warn("ignoring a sandbox-paths entry", "err", err)
	}
	return f
}

func mappingSources(ms []PathMapping) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Source)
	}
	return s
}

// storeView returns the store paths the sandbox shows, as Nix does: the
// closure of the derivation's inputs (found from env-vars when nbs build
// did not name it) plus that of the store paths in sandbox-paths. When
// the derivation cannot be found, the closure of the store paths env-vars
// mentions stands in; when no closure can be computed at all, nil (the
// whole store, read-only) with a warning. The tools (--with) and their
// closure are added.
func storeView(ctx context.Context, drvPath string, ev *nix.EnvVars, extra, tools []string, log *slog.Logger) []string {
	var d *nix.Derivation
	var err error
	if drvPath != "" {
		d, err = nix.ReadDerivation(drvPath)
	} else {
		name, _ := ev.Get("name")
		out, _ := ev.Get("out")
		if name != "" && out != "" {
			drvPath, d, err = nix.FindDerivation(nix.StoreDir, name, out)
		} else {
			err = errors.New("env-vars has no name and out")
		}
	}
	var roots []string
	if err == nil {
		roots, err = d.InputPaths()
	}
	if err != nil {
		log.Debug("derivation unknown; taking the store paths env-vars names", "err", err)
		outputs := map[string]bool{}
		names, ok := ev.Get("outputs")
		if !ok {
			names = "out"
		}
		for _, o := range strings.Fields(names) {
			if p, ok := ev.Get(o); ok {
				outputs[p] = true
			}
		}
		for _, v := range ev.Vars {
			for _, p := range nix.StorePathsIn(v.Value) {
				if !outputs[p] {
					roots = append(roots, p)
				}
			}
		}
	} else {
		log.Debug("store view from the derivation's inputs", "drv", drvPath)
	}
	for _, p := range extra {
		roots = append(roots, nix.StorePathsIn(p)...)
	}
	// Tools the user asked for (--with), with their closure.
	roots = append(roots, tools...)
	closure, err := nix.Requisites(ctx, nix.ExistingStorePaths(roots))
	if err != nil {
		log.Warn("cannot compute the build's input closure; showing the whole store read-only", "err", err)
		return nil
	}
	if closure == nil {
		closure = []string{}
	}
	return closure
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

// sandboxOwner picks the host user the sandbox user 1000 maps to: the
// caller; under sudo the user who ran sudo; as plain root a free Nix
// build user, or nobody. The sandbox never runs as host root. The
// returned function releases what was taken.
func sandboxOwner() (Owner, func(), error) {
	none := func() {}
	if !isHostRoot() {
		return Owner{UID: os.Geteuid(), GID: os.Getegid()}, none, nil
	}
	if su, sg := os.Getenv("SUDO_UID"), os.Getenv("SUDO_GID"); su != "" && sg != "" {
		uid, err1 := strconv.Atoi(su)
		gid, err2 := strconv.Atoi(sg)
		if err1 == nil && err2 == nil && uid != 0 && gid != 0 {
			return Owner{UID: uid, GID: gid}, none, nil
		}
	}
	if o, release, ok := lockBuildUser("/nix/var/nix/userpool"); ok {
		return o, release, nil
	}
	return Owner{UID: 65534, GID: 65534}, none, nil
}

// lockBuildUser takes a member of the nixbld group the way Nix's UserLock
// does: by flock'ing userpool/<uid>. Nix kills every process of a build
// user before it builds with it; holding the lock keeps Nix from picking
// the user our sandbox runs as.
func lockBuildUser(pool string) (Owner, func(), bool) {
	g, err := user.LookupGroup("nixbld")
	if err != nil {
		return Owner{}, nil, false
	}
	gid, _ := strconv.Atoi(g.Gid)
	members, err := groupMembers("/etc/group", "nixbld")
	if err != nil {
		return Owner{}, nil, false
	}
	for _, name := range members {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		if uid == 0 {
			continue
		}
		if err := os.MkdirAll(pool, 0o755); err != nil {
			return Owner{}, nil, false
		}
		f, err := os.OpenFile(filepath.Join(pool, u.Uid), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return Owner{UID: uid, GID: gid}, func() { f.Close() }, true
	}
	return Owner{}, nil, false
}

// groupMembers lists the members of group name in an /etc/group file.
func groupMembers(path, name string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 4 && f[0] == name && f[3] != "" {
			return strings.Split(f[3], ","), nil
		}
	}
	return nil, fmt.Errorf("group %s has no members in %s", name, path)
}

// reachable checks that the sandbox user can reach dir: as root nbs
// creates the work directory there, and the sandbox, running as owner,
// must be able to get to it.
func reachable(dir string, owner Owner) error {
	for p := dir; ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("work directory base %s: %w", dir, err)
		}
		st := info.Sys().(*syscall.Stat_t)
		m := info.Mode().Perm()
		ok := m&0o001 != 0 || (int(st.Uid) == owner.UID && m&0o100 != 0) || (int(st.Gid) == owner.GID && m&0o010 != 0)
		if !ok {
			return fmt.Errorf("the sandbox runs as uid %d, which cannot reach %s (mode %#o) on the way to the work directory in %s; set TMPDIR to a directory it can reach, e.g. TMPDIR=/tmp", owner.UID, p, m, dir)
		}
		if p == "/" {
			return nil
		}
	}
}

// isHostRoot reports whether nbs runs as the real root: uid 0 in the
// initial user namespace. Root of a user namespace (unshare -r, a rootless
// container) is an ordinary user to the kernel and is treated as one.
func isHostRoot() bool {
	if os.Geteuid() != 0 {
		return false
	}
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
}

// hasKVM: Nix binds /dev/kvm when the machine's system-features contain
// kvm, which they do by default when the daemon (root) can use the
// device. The assignment asks for it whenever the host has it; binding
// needs no access to the device, so an ordinary caller gets it too.
func hasKVM() bool {
	_, err := os.Stat("/dev/kvm")
	return err == nil
}

// ranUnsandboxed tells from NIX_BUILD_TOP whether the build ran without
// Nix's sandbox: its build directory was then the host's own, the very
// directory Nix kept (nix-build-NAME.drv-N up to 2.29, nix-PID-N
// from 2.30), instead of sandbox-build-dir.
func ranUnsandboxed(top, keptDir string) bool {
	if top == keptDir {
		return true
	}
	return top != "/build" && strings.HasPrefix(path.Base(top), "nix-build-") && strings.Contains(path.Base(top), ".drv-")
}

// loadCommand is the shell code that recreates the build's environment:
// `source /build/env-vars`, preceded for structured-attrs builds by
// .attrs.sh, the way nixpkgs' builders read it (NIX-SANDBOX-HISTORY.md
// §7): the attributes first, then env-vars, which reflects later state.
func loadCommand(hostBuildDir, buildDir string) string {
	load := "source " + shQuote(path.Join(buildDir, "env-vars"))
	if _, err := os.Lstat(filepath.Join(hostBuildDir, ".attrs.sh")); err == nil {
		load = "source " + shQuote(path.Join(buildDir, ".attrs.sh")) + "; " + load
	}
	return load
}

// rcConfig is what the interactive shell's start-up file is made from.
type rcConfig struct {
	shell string
	// load sources env-vars (see loadCommand); tools puts the --with
	// tools first in PATH ("" for none).
	load, tools string
	buildDir    string
	// name is the derivation's name for the prompt.
	name  string
	color bool
	// stdenvSetup is $stdenv/setup when the build used nixpkgs' stdenv;
	// phases are its phases, for the hint.
	stdenvSetup string
	phases      []string
}

// interactiveShell returns the argv (and the bash rc file) for an
// interactive shell with env-vars sourced, in the directory the failing
// phase started in, with a prompt that says where it is.
func interactiveShell(c rcConfig) ([]string, string) {
	prompt := `[nbs ` + c.name + `] \w \$ `
	if c.color {
		prompt = `\[\e[1;32m\][nbs ` + c.name + `]\[\e[0m\] \w \$ `
	}
	if !strings.Contains(path.Base(c.shell), "bash") {
		cmd := c.load
		if c.tools != "" {
			cmd += "; " + c.tools
		}
		return []string{c.shell, "-c", cmd + `; exec "$0" -i`, c.shell}, ""
	}
	var rc strings.Builder
	rc.WriteString(c.load + "\n")
	if c.stdenvSetup != "" {
		// As nix-shell and nix develop do: stdenv's functions
		// (genericBuild, runPhase, the phases) in the shell. setup runs
		// `set -eu` and its hooks; a failure there would end the
		// interactive shell on the spot, so a subshell tries it first —
		// as a command of its own: in an if condition bash would ignore
		// the errexit that setup turns on.
		// setup resets PATH and other variables, so env-vars, which
		// has the failed build's state, is sourced again after it.
		setup := shQuote(c.stdenvSetup)
		fmt.Fprintf(&rc, "( source %s ) >/dev/null 2>&1\n", setup)
		rc.WriteString("if [ \"$?\" = 0 ]; then\n")
		fmt.Fprintf(&rc, "source %s\n", setup)
		// nix-shell's clean-up for an interactive shell: no errexit,
		// nounset or nullglob; NIX_LOG_FD would print Nix's
		// structured-log lines (@nix {...}) into the terminal.
		rc.WriteString("set +e +u; shopt -u nullglob\n")
		rc.WriteString(c.load + "\n")
		rc.WriteString("unset NIX_LOG_FD\n")
		fmt.Fprintf(&rc, "printf '%%s\\n' %s %s >&2\n",
			shQuote("nbs: stdenv is loaded: genericBuild runs every phase, runPhase NAME one of them (runPhase buildPhase)"),
			shQuote("nbs: phases: "+strings.Join(c.phases, " ")))
		rc.WriteString("else\n")
		fmt.Fprintf(&rc, "echo %s >&2\n", shQuote("nbs: warning: sourcing "+c.stdenvSetup+" fails here, so stdenv's functions are not loaded (source it to see why)"))
		rc.WriteString("fi\n")
	}
	if c.tools != "" {
		rc.WriteString(c.tools + "\n")
	}
	// Land in the directory the failing phase started in (env-vars'
	// PWD), as far as it exists in the copy, else in the source root
	// when the derivation names one, else in the build directory.
	rc.WriteString(`cd -- "$PWD" 2>/dev/null || { [ -n "${sourceRoot-}" ] && cd -- "$sourceRoot"; } 2>/dev/null || cd ` + shQuote(c.buildDir) + "\n")
	rc.WriteString("PS1=" + shQuote(prompt) + "\n")
	rc.WriteString("exec 3<&-\n")
	return []string{c.shell, "--rcfile", "/dev/fd/3", "-i"}, rc.String()
}

// defaultPhases is genericBuild's phase list when the derivation sets no
// phases (nixpkgs pkgs/stdenv/generic/setup.sh, without the empty
// pre*/post* hook lists).
var defaultPhases = []string{"unpackPhase", "patchPhase", "configurePhase", "buildPhase", "checkPhase", "installPhase", "fixupPhase", "installCheckPhase", "distPhase"}

// stdenvSetup returns $stdenv/setup when env-vars names a stdenv whose
// setup script exists on this machine.
func stdenvSetup(ev *nix.EnvVars) (string, bool) {
	s, ok := ev.Get("stdenv")
	if !ok || !nix.IsStorePath(s) {
		return "", false
	}
	setup := s + "/setup"
	if fi, err := os.Stat(setup); err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return setup, true
}

// stdenvPhases are the phases genericBuild runs for this derivation.
func stdenvPhases(ev *nix.EnvVars) []string {
	if p, ok := ev.Get("phases"); ok && strings.TrimSpace(p) != "" {
		return strings.Fields(p)
	}
	return defaultPhases
}

// promptName is the derivation's name for the prompt.
func promptName(drv string, ev *nix.EnvVars) string {
	if n, ok := ev.Get("name"); ok && n != "" {
		return n
	}
	if drv != "" {
		return nix.DrvName(drv)
	}
	return "sandbox"
}

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
