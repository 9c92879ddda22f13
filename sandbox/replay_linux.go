package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/interrupt"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
	"github.com/nix-build-shell/nbs/sandbox/term"
)

// Replay runs the derivation c.Drv again in a re-created Nix sandbox, as
// the calling user: the builder, its arguments and its environment as
// Nix gives them, in a fresh /build, with the outputs to be created in
// the sandbox's private store directory. A bash builder stops at its
// failure in its own live state (see bashHook) and runs c.Script,
// c.Command or an interactive shell there; any other builder that fails
// leaves its /build and environment to a shell, like a kept directory.
// It returns the status of what ran at the stop (or of the builder, when
// nothing stopped and nothing was entered) and what happened. Nothing
// stays behind: the work directory goes on every way out, a signal
// (SIGINT, SIGTERM, SIGHUP) ends the sandbox and returns an
// *interrupt.Error.
//
// The steps, as in Enter: read the derivation and make sure its inputs
// exist (readReplayTarget), the sandbox user and the host's Nix, the
// builder's environment (nix.NewBuildEnv), the workspace with the build
// directory's files and the store view, the spec, run, and the report.
func Replay(ctx context.Context, c ReplayConfig) (status int, out ReplayOutcome, err error) {
	log := logOr(c.Log, c.Stderr)
	ctx, signals := interrupt.Catch(ctx)
	defer signals.Stop()

	tty := term.IsTerminal(c.Stdin) && term.IsTerminal(c.Stdout)
	if !tty && c.Script == "" && len(c.Command) == 0 {
		return 0, out, errors.New("no terminal for an interactive shell at the stop: give a command to run there (nbs replay TARGET CMD…, or --run CMD)")
	}
	// Nix is asked for its settings while the derivation is read.
	factsc := make(chan hostFacts, 1)
	go func() { factsc <- readHostFacts(ctx, log) }()
	t, err := readReplayTarget(ctx, c.Drv, log)
	if err != nil {
		<-factsc
		return 0, out, err
	}
	u, err := takeSandboxUser()
	if err != nil {
		<-factsc
		return 0, out, err
	}
	defer u.release()
	facts := <-factsc
	host, why, note := ranWithoutSandbox(c, t.drv, facts.sandbox)
	if note != "" {
		log.Warn(note)
	}

	ws, err := openWorkspace(u, "", log)
	if err != nil {
		return 0, out, err
	}
	defer func() {
		if rerr := ws.dir.remove(); rerr != nil && err == nil {
			err = fmt.Errorf("remove work directory %s: %w", ws.dir.path, rerr)
		}
	}()
	// In Nix's sandbox the build directory is sandbox-build-dir; a
	// build without it ran in its host directory (tmpDirInSandbox is
	// tmpDir in LocalDerivationGoal::startBuilder;
	// DerivationBuilderImpl::startBuild from 2.29): a fresh one of ours.
	buildDir := "/build"
	if host {
		// Whether namespaces can be made, before the word on how the
		// replay runs: where they cannot, one line says only that.
		probe, plain := &spec{Unsandboxed: true, HostNetwork: true}, &spec{Unsandboxed: true, NoNamespaces: true}
		r, err := namespacesRefused(procAttr(probe, u.ids), procAttr(plain, u.ids))
		if err != nil {
			return 0, out, err
		}
		if r != nil {
			return 0, out, replayNeedsNamespaces(fmt.Errorf("start sandbox: %w: %v; %s", errUserNS, r.err, r.hint))
		}
		buildDir = ws.dir.build()
		log.Warn("the original build ran without Nix's sandbox (" + why + "); so does the replay: the host's file system, network and processes, " +
			"the build directory at " + buildDir + ", the outputs in a private view of /nix/store")
	}
	env, err := nix.NewBuildEnv(t.drv, nix.BuildEnvOptions{
		Version:    facts.version,
		BuildDir:   buildDir,
		Cores:      facts.cores,
		Getenv:     os.LookupEnv,
		References: func(p string) ([]string, error) { return nix.References(ctx, p) },
		PathInfos: func(roots []string) ([]nix.PathInfo, error) {
			infos, from, err := nix.UserCache().PathInfos(ctx, roots)
			log.Debug("path infos for exportReferencesGraph", "from", from)
			return infos, err
		},
	})
	if err != nil {
		return 0, out, fmt.Errorf("%s: %w", c.Drv, err)
	}
	if err := ws.writeBuildFiles(env.Files); err != nil {
		return 0, out, err
	}
	ws.storePaths = storeView(ctx, t.drv, nil, buildVars{ev: &nix.EnvVars{}}, mappingSources(facts.extra), nil, log)
	if host {
		// The overlay's work directory, beside its upper one (store/).
		if err := ws.mkdirOwned(ws.dir.work(), 0o700); err != nil {
			return 0, out, err
		}
	}

	report, err := randomName(replayReport)
	if err != nil {
		return 0, out, err
	}
	var hide []string
	if host {
		hide = privateDirs(u.ids.UID, ws.dir.path)
	}
	s := replaySpec(c, t, env, facts, ws, host, hide, tty, report, log)
	stdin := c.Stdin
	if !tty {
		// Nix's builder reads /dev/null.
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return 0, out, err
		}
		defer devnull.Close()
		stdin = devnull
	}
	if ierr := signals.Err(); ierr != nil {
		return 0, out, ierr
	}
	if c.Started != nil {
		c.Started()
	}
	status, err = run(ctx, s, u.ids, nil, stdin, c.Stdout, c.Stderr)
	if errors.Is(err, errUserNS) {
		return 0, out, replayNeedsNamespaces(err)
	}
	if err != nil {
		return 0, out, err
	}
	if ierr := signals.Err(); ierr != nil {
		return 0, out, ierr
	}
	if out, ok := readReplayReport(filepath.Join(ws.dir.tmp(), report)); ok {
		return status, out, nil
	}
	out.BuilderExit = status
	if status == 0 {
		return 0, out, nil
	}

	// The builder failed without stopping in a shell of its own: the
	// replayed /build and the builder's environment, as at the failure.
	sh, err := replayShell(t, ws.storePaths)
	if err != nil {
		return status, out, err
	}
	s.Exe = ""
	s.Argv, s.RC = fallbackCommand(c, sh, t.name, buildDir)
	s.Env = env.Env
	// The first sandbox left its mount points in the root directory.
	if err := ws.freshRoot(); err != nil {
		return status, out, err
	}
	out.Entered = true
	if c.Entering != nil {
		c.Entering(status)
	}
	status, err = run(ctx, s, u.ids, nil, c.Stdin, c.Stdout, c.Stderr)
	if err != nil {
		return 0, out, err
	}
	if ierr := signals.Err(); ierr != nil {
		return 0, out, ierr
	}
	return status, out, nil
}

// replayTarget is the derivation to replay, read and checked.
type replayTarget struct {
	drv  *nix.Derivation
	name string
	// bash: the builder is bash, which the hook can stop.
	bash bool
}

// readReplayTarget reads drvPath and makes sure the builder and every input
// exist, asking Nix to realise the input derivations when some are
// missing (they normally are there: the original build had them).
func readReplayTarget(ctx context.Context, drvPath string, log *slog.Logger) (*replayTarget, error) {
	d, err := nix.ReadDerivation(drvPath)
	if err != nil {
		return nil, err
	}
	t := &replayTarget{drv: d, name: d.Env["name"]}
	if t.name == "" {
		t.name = nix.DrvName(drvPath)
	}
	if d.Platform != "" && d.Platform != "builtin" && d.Platform != nixSystem() {
		return nil, fmt.Errorf("%s is for %s; this machine builds %s (replay it on a builder of that platform)", drvPath, d.Platform, nixSystem())
	}
	if strings.HasPrefix(d.Builder, "builtin:") {
		return nil, fmt.Errorf("%s: the builder is Nix's own %s, which runs inside Nix: there is nothing to replay", drvPath, d.Builder)
	}
	inputs, err := d.InputPaths()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", drvPath, err)
	}
	var missing []string
	for _, p := range inputs {
		if _, err := os.Lstat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		log.Warn("inputs missing; asking Nix to realise them", "paths", strings.Join(missing, " "))
		var drvs []string
		for drv := range d.InputDrvs {
			drvs = append(drvs, drv)
		}
		sort.Strings(drvs)
		if err := nix.Realise(ctx, drvs); err != nil {
			return nil, fmt.Errorf("%s: realise the inputs: %w", drvPath, err)
		}
	}
	if st, err := os.Stat(d.Builder); err != nil {
		return nil, fmt.Errorf("%s: builder %s: %w", drvPath, d.Builder, err)
	} else if st.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("%s: builder %s is not executable", drvPath, d.Builder)
	}
	t.bash = isBashBuilder(d.Builder)
	return t, nil
}

// nixSystem is the Nix system of this machine's kernel and CPU.
func nixSystem() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	return arch + "-linux"
}

// isBashBuilder: bash started under a name of its own (not sh, which puts it
// in POSIX mode, where it ignores BASH_ENV).
func isBashBuilder(builder string) bool {
	if strings.Contains(path.Base(builder), "bash") {
		return true
	}
	if real, err := filepath.EvalSymlinks(builder); err == nil {
		return strings.Contains(path.Base(real), "bash") && path.Base(builder) != "sh"
	}
	return false
}

// writeBuildFiles creates the fresh build directory, owned by the
// sandbox user, with the files Nix writes before the builder starts.
func (w *workspace) writeBuildFiles(files []nix.BuildFile) error {
	dir := w.dir.build()
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create build directory: %w", err)
	}
	chown := func(p string) error {
		if w.chown == nil {
			return nil
		}
		return os.Lchown(p, w.chown.UID, w.chown.GID)
	}
	if err := chown(dir); err != nil {
		return err
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
		if err := chown(p); err != nil {
			return err
		}
	}
	return nil
}

// freshRoot makes the work directory ready for another sandbox: the
// mount points the last one created in the root and the store
// directory are still there (empty files and directories: the mounts
// were in the sandbox's own namespace), the outputs the build created
// in the store directory stay.
func (w *workspace) freshRoot() error {
	for _, p := range w.storePaths {
		if err := os.Remove(filepath.Join(w.dir.store(), filepath.Base(p))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove a mount point: %w", err)
		}
	}
	root := w.dir.root()
	if err := removeTree(root); err != nil {
		return fmt.Errorf("empty %s: %w", root, err)
	}
	// A volatile overlay (hostReplay's /nix/store) leaves a mark in its
	// work directory that refuses the next mount of it; that mount
	// ended cleanly, with the sandbox (Documentation/filesystems/
	// overlayfs.rst, "Volatile mount").
	// overlayfs makes work/ 0000; it is ours.
	os.Chmod(filepath.Join(w.dir.work(), "work"), 0o700)
	if err := removeTree(filepath.Join(w.dir.work(), "work", "incompat")); err != nil {
		return fmt.Errorf("reuse the overlay's work directory: %w", err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return err
	}
	if w.chown != nil {
		return os.Lchown(root, w.chown.UID, w.chown.GID)
	}
	return nil
}

// replaySpec is the sandbox of the replay: Nix's, with the builder's
// argv and environment, and for a bash builder the hook on fd 3. host:
// the original ran without Nix's sandbox, and so does the replay (see
// hostReplay).
func replaySpec(c ReplayConfig, t *replayTarget, env *nix.BuildEnv, facts hostFacts, ws *workspace, host bool, hide []string, tty bool, report string, log *slog.Logger) *spec {
	s := nixSandbox(ws, facts, "/build", "", t.drv.IsFixedOutput(), tty, log)
	reportDir, terminal := "/tmp", "/dev/pts/0"
	if host {
		hostReplay(s, ws, hide)
		if len(hide) > 0 {
			log.Debug("hidden from the replay", "dirs", strings.Join(hide, " "))
		}
		// The host's /tmp is the build's; the sandbox's devpts is the
		// host's.
		reportDir, terminal = ws.dir.tmp(), "/dev/tty"
	}
	// As Nix's runChild: argv[0] is the builder's base name.
	s.Exe = env.Argv[0]
	s.Argv = append([]string{path.Base(env.Argv[0])}, env.Argv[1:]...)
	s.Env = env.Env
	s.Cwd, _ = env.Get("NIX_BUILD_TOP")
	if !t.bash {
		log.Debug("the builder is not bash: it runs as it is, and a shell enters /build if it fails")
		return s
	}
	h := hookConfig{
		script:     c.Script,
		breakPhase: c.Break,
		tty:        tty,
		bash:       t.drv.Builder,
		name:       t.name,
		color:      !term.NoColor(),
		reportDir:  reportDir,
		reportName: report,
		terminal:   terminal,
	}
	if len(c.Command) > 0 {
		h.script = shWords(c.Command)
	}
	h.bashEnv, h.hasEnv = t.drv.Env["BASH_ENV"]
	var e []string
	for _, kv := range env.Env {
		if !strings.HasPrefix(kv, "BASH_ENV=") {
			e = append(e, kv)
		}
	}
	s.Env = append(e, "BASH_ENV=/dev/fd/"+strconv.Itoa(rcFD))
	sort.Strings(s.Env)
	s.RC = bashHook(h)
	log.Debug("bash builder: the hook stops it at its failure", "break", c.Break)
	return s
}

// hostReplay makes s the replay of a build that ran without Nix's
// sandbox (sandbox = false, or relaxed with __noChroot): the host's file
// system, network, processes and ids, as for nbs shell on such a build
// (newSpec), the build directory at its host path in the work directory,
// and /nix/store an overlay of the host's with the work directory's
// store/ as its upper layer. The outputs are created there, never in the
// host's store, and go with the work directory. The upper layer's root
// is ours, so the merged /nix/store is writable (overlayfs takes a
// directory's attributes from its upper layer); overlayfs in a user
// namespace needs Linux 5.11 (userxattr). volatile: the outputs are
// thrown away, so the end of the replay does not wait for the upper
// file system's writeback (see compileView).
//
// hide are directories of the user the replay runs as that the build
// user it ran as could not read, each covered by an empty tmpfs of its
// own (privateDirs).
func hostReplay(s *spec, ws *workspace, hide []string) {
	s.Root = "/"
	s.Mounts = []Op{{Kind: OpMount, FSType: "overlay", Target: nix.StoreDir,
		Data: "lowerdir=" + nix.StoreDir + ",upperdir=" + ws.dir.store() + ",workdir=" + ws.dir.work() + ",userxattr,volatile"},
		// The store's own mode (root:nixbld 01775 on the host).
		{Kind: OpChmod, Target: nix.StoreDir, Mode: 0o1775}}
	for _, d := range hide {
		s.Mounts = append(s.Mounts, Op{Kind: OpMount, FSType: "tmpfs", Target: d, Data: "mode=0700,size=1m"})
	}
	s.View = nil
	s.Unsandboxed = true
	s.HostNetwork = true
	s.Hostname, s.Domainname = "", ""
}

// privateDirs are the directories of uid a build that ran without
// Nix's sandbox, as one of Nix's build users, could not have read, and
// its replay, which runs as uid, must not either: the home directory
// (SSH keys, tokens; Nix gives the build HOME=/homeless-shelter) and the
// runtime directory (/run/user/UID: the ssh and gpg agents' sockets,
// which would let the build's code use the user's keys). Only existing
// directories (the child must create nothing on the host), never "/",
// nor one that holds the replay's work directory (TMPDIR below the
// home) or the store.
func privateDirs(uid int, work string) []string {
	var dirs []string
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.HomeDir != "" {
		dirs = append(dirs, filepath.Clean(u.HomeDir))
	}
	dirs = append(dirs, "/run/user/"+strconv.Itoa(uid))
	var hide []string
	for _, d := range dirs {
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() || d == "/" || !filepath.IsAbs(d) ||
			d == work || strings.HasPrefix(work, d+"/") || d == nix.StoreDir || strings.HasPrefix(nix.StoreDir, d+"/") {
			continue
		}
		hide = append(hide, d)
	}
	return hide
}

// replayNeedsNamespaces is err, the refusal of the replay's namespaces,
// with what a replay needs them for.
func replayNeedsNamespaces(err error) error {
	return fmt.Errorf("a replay runs the build again in a sandbox of its own, which needs user and mount namespaces "+
		"(a build that ran with sandbox = false too: its outputs go to a private view of /nix/store, never the host's store); %w "+
		"(nbs shell enters a kept directory of a sandbox = false build without them)", err)
}

// ranWithoutSandbox says whether the original build of d ran without
// Nix's sandbox, and how nbs knows (sandboxOff): the user's word or
// Nix's setting.
//
// The kept directory's env-vars is never asked: the build wrote it, and
// a build that ran in the sandbox could name a host directory in
// NIX_BUILD_TOP to have its replay run on the host. When it does, note
// says so and how to replay it on the host if it really ran there.
func ranWithoutSandbox(c ReplayConfig, d *nix.Derivation, setting string) (host bool, why, note string) {
	if host, why = sandboxOff(c.Sandbox, setting, func() bool { return noChroot(d) }); host {
		return host, why, ""
	}
	if c.KeptDir != "" {
		if dir, err := nix.FindBuildDir(c.KeptDir); err == nil {
			if ev, err := nix.ReadEnvVars(filepath.Join(dir, "env-vars")); err == nil {
				if top, ok := ev.Get("NIX_BUILD_TOP"); ok && top != "" && ranUnsandboxed(top, dir) {
					note = "the kept env-vars names the host build directory " + top + ", but Nix's sandbox setting says the build ran in the sandbox: " +
						"the replay runs in one (--no-sandbox replays it on the host, if it really ran there)"
				}
			}
		}
	}
	return false, "", note
}

// noChroot: the derivation's __noChroot attribute is true (a Boolean
// under structured attrs, "1" otherwise).
func noChroot(d *nix.Derivation) bool {
	if raw, ok := d.Env["__json"]; ok {
		var attrs struct {
			NoChroot bool `json:"__noChroot"`
		}
		return json.Unmarshal([]byte(raw), &attrs) == nil && attrs.NoChroot
	}
	return d.Env["__noChroot"] == "1"
}

// mkdirOwned creates directory p with mode, owned by the sandbox user.
func (w *workspace) mkdirOwned(p string, mode os.FileMode) error {
	if err := os.Mkdir(p, mode); err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	if w.chown != nil {
		return os.Lchown(p, w.chown.UID, w.chown.GID)
	}
	return nil
}

// shWords quotes a command and its arguments as one line of shell code.
func shWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shquote.Quote(w)
	}
	return strings.Join(q, " ")
}

// randomName is prefix and 8 random hex digits: the report's name, which
// a build cannot guess.
func randomName(prefix string) (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return prefix + "-" + hex.EncodeToString(b), nil
}

// readReplayReport reads what the hook wrote when it stopped.
func readReplayReport(p string) (ReplayOutcome, bool) {
	data, err := os.ReadFile(p)
	if err != nil {
		return ReplayOutcome{}, false
	}
	f := strings.Fields(string(data))
	switch {
	case len(f) >= 2 && f[0] == "failed":
		st, err := strconv.Atoi(f[1])
		if err != nil {
			return ReplayOutcome{}, false
		}
		o := ReplayOutcome{Stopped: true, Status: st}
		if len(f) > 2 {
			o.Phase = f[2]
		}
		return o, true
	case len(f) == 2 && f[0] == "break":
		return ReplayOutcome{Stopped: true, Break: true, Phase: f[1]}, true
	}
	return ReplayOutcome{}, false
}

// replayShell is the shell that enters a replayed /build when the
// builder did not stop in its own: the builder when it is bash, else a
// bash or sh among the build's inputs.
func replayShell(t *replayTarget, storePaths []string) (string, error) {
	if t.bash {
		return t.drv.Builder, nil
	}
	for _, name := range []string{"bin/bash", "bin/sh"} {
		for _, p := range storePaths {
			if st, err := os.Stat(filepath.Join(p, name)); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
				return filepath.Join(p, name), nil
			}
		}
	}
	for _, p := range storePaths {
		if strings.HasSuffix(p, "-bash") {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	return "", errors.New("the builder failed, and no shell (bash or sh) is among the build's inputs to enter its /build with")
}

// fallbackCommand is what enters the replayed /build after a failure
// without a stop: the script, the command or an interactive shell.
func fallbackCommand(c ReplayConfig, sh, name, buildDir string) ([]string, string) {
	switch {
	case c.Script != "":
		return []string{sh, "-c", c.Script}, ""
	case len(c.Command) > 0:
		return append([]string{sh, "-c", `exec "$@"`, "--"}, c.Command...), ""
	}
	return interactiveShell(rcConfig{
		shell:    sh,
		load:     ":",
		buildDir: buildDir,
		name:     name,
		color:    !term.NoColor(),
	})
}
