package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nix-build-shell/nbs/sandbox/interrupt"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
	"github.com/nix-build-shell/nbs/sandbox/term"
)

// Options is one request to enter a kept directory on a builder.
type Options struct {
	Target  *Target  // required: see Parse
	Dir     string   // the kept directory on the builder
	Command []string // empty: an interactive shell
	// Script, when set instead of Command, is shell code run the way a
	// local nbs build --run runs it: by the remote nbs shell --run, in
	// the interactive shell's environment (stdenv's included). An nbs
	// installed on the builder that has no --run yet gets it as
	// $SHELL -c after env-vars instead.
	Script string
	Keep   bool // the remote nbs shell's --keep
	Debug  bool // the remote nbs shell's --debug
	// Replay, when set, replays a failed derivation on the builder
	// (the remote nbs replay) instead of entering Dir; Script or
	// Command run at its stop.
	Replay *Replay

	// The session's terminal (or pipes): ssh gets a remote pty (-tt)
	// when Stdin and Stdout are terminals.
	Stdin, Stdout, Stderr *os.File
	// Log gets the ssh commands (debug) and a failed cleanup (warning).
	Log *slog.Logger
}

// Replay is a failed derivation to run again on the builder. The
// builder has the build's inputs (Nix copied them there) but not its
// .drv file: the derivation goes there resolved (nix.Derivation.Basic),
// as Nix sent it, into the session's private directory, never into the
// builder's store, so that no trust there is needed; the remote nbs
// replays it from that file (nbs replay --shipped) and says, as it
// would here, what happened.
type Replay struct {
	Drv        string // the .drv here, which the messages name
	Derivation []byte // its ATerm as the builder gets it
	// What the build log here says of the original failure: its
	// stdenv phase ("" unknown) and the builder's exit code (-1
	// unknown).
	Phase string
	Exit  int
	Break string // stop before this stdenv phase instead
}

// Error is a session failure with what the user can do about it.
type Error struct {
	Err  error
	Hint string // one sentence, for after the message
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// shCommand is script as the one remote command ssh sends: run by sh, so
// that it means the same whatever the remote user's login shell is.
func shCommand(script string) string { return "sh -c " + shquote.Quote(script) }

// probeScript makes the private directory (mode 0711: the sandbox user
// must be able to re-execute a copy of nbs in it) and says whether nbs is
// installed (a program called nbs that says "nbs VERSION" to --version),
// which of the flags nbs needs it has, and what the builder is. With
// ship, a file name, it writes its stdin to that file in the directory.
//
// replay=1: the installed nbs's replay has --remote, which came with
// the hidden --shipped this session uses.
func probeScript(ship string) string {
	s := `umask 077; d=$(mktemp -d "${TMPDIR:-/tmp}/nbs-remote.XXXXXXXXXX") && chmod 711 "$d" && echo "dir=$d"; `
	if ship != "" {
		s += `[ -n "$d" ] && cat > "$d"/` + shquote.Quote(ship) + ` && echo "shipped=1"; `
	}
	return s + `p=$(command -v nbs) && "$p" --version 2>/dev/null | grep -q '^nbs ' && echo "nbs=$p" && ` +
		`{ "$p" shell --help 2>/dev/null | grep -q -e '--run ' && echo "run=1"; ` +
		`"$p" replay --help 2>/dev/null | grep -q -e '--remote ' && echo "replay=1"; }; echo "uname=$(uname -sm)"`
}

func copyScript(dir string) string {
	return `cat > ` + shquote.Quote(dir+"/nbs") + ` && chmod 755 ` + shquote.Quote(dir+"/nbs")
}

// runScript records nbs's pid (exec keeps the shell's) for cleanupScript,
// then becomes `nbs shell`.
func runScript(dir, nbs string, args []string, env string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shquote.Quote(a)
	}
	if term.NoColor() {
		// ssh passes on TERM only; the user's wish for no colours
		// holds on the builder too.
		env += "export NO_COLOR=1; "
	}
	return `echo $$ > ` + shquote.Quote(dir+"/pid") + ` && ` + env + `exec ` + shquote.Quote(nbs) + ` ` + strings.Join(q, " ")
}

// cleanupScript ends the nbs of runScript if it still runs (after a lost
// connection or an interrupt: SIGTERM makes it end its sandbox and remove
// its copy) and removes the private directory. The process must still be
// an nbs, so a reused pid is left alone.
func cleanupScript(dir string) string {
	d := shquote.Quote(dir)
	return `d=` + d + `; if [ -r "$d/pid" ]; then p=$(cat "$d/pid"); ` +
		`case $(readlink "/proc/$p/exe" 2>/dev/null) in */nbs|*"/nbs (deleted)") kill -TERM "$p" 2>/dev/null; i=0; ` +
		`while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done; kill -KILL "$p" 2>/dev/null;; esac; fi; ` +
		`rm -rf "$d"`
}

// shellArgs are the remote nbs shell's arguments; run: it has --run.
func shellArgs(o Options, run bool) []string {
	args := []string{"shell"}
	if o.Debug {
		args = append(args, "--debug")
	}
	if o.Keep {
		args = append(args, "--keep")
	}
	command := o.Command
	switch {
	case o.Script != "" && run:
		args = append(args, "--run", o.Script)
	case o.Script != "":
		// The sandbox's shell re-executed (/proc/self/exe: the process
		// is that shell when the command is executed) with -c: what
		// every nbs shell runs as $SHELL -c after env-vars.
		command = []string{"/proc/self/exe", "-c", o.Script}
	}
	return append(append(args, "--", o.Dir), command...)
}

// replayArgs are the remote nbs replay's arguments, the derivation
// being in the file shipped.
func replayArgs(o Options, shipped string) []string {
	rp := o.Replay
	args := []string{"replay", "--shipped", shipped, "--original-exit", strconv.Itoa(rp.Exit)}
	if o.Debug {
		args = append(args, "--debug")
	}
	if rp.Phase != "" {
		args = append(args, "--original-phase", rp.Phase)
	}
	if rp.Break != "" {
		args = append(args, "--break", rp.Break)
	}
	if o.Script != "" {
		args = append(args, "--run", o.Script)
	}
	return append(append(args, "--", rp.Drv), o.Command...)
}

// probe is what the builder said.
type probe struct {
	dir, nbs, uname string
	// run: the installed nbs knows nbs shell --run; replay: nbs replay
	// --remote (and --shipped).
	run, replay bool
	// shipped: the file on probeScript's stdin arrived.
	shipped bool
}

func parseProbe(out string) probe {
	var p probe
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), "=")
		switch k {
		case "dir":
			p.dir = v
		case "nbs":
			p.nbs = v
		case "uname":
			p.uname = v
		case "run":
			p.run = v == "1"
		case "replay":
			p.replay = v == "1"
		case "shipped":
			p.shipped = v == "1"
		}
	}
	return p
}

// unameMatches reports whether `uname -sm` describes a machine this
// binary runs on.
func unameMatches(uname, goos, goarch string) bool {
	f := strings.Fields(uname)
	if len(f) != 2 {
		return false
	}
	oses := map[string]string{"Linux": "linux", "Darwin": "darwin", "FreeBSD": "freebsd"}
	arches := map[string][]string{
		"x86_64": {"amd64"}, "amd64": {"amd64"},
		"aarch64": {"arm64"}, "arm64": {"arm64"},
		"i686": {"386"}, "i386": {"386"},
		"armv7l": {"arm"}, "armv6l": {"arm"},
		"riscv64": {"riscv64"}, "ppc64le": {"ppc64le"}, "s390x": {"s390x"},
	}
	if oses[f[0]] != goos {
		return false
	}
	for _, a := range arches[f[1]] {
		if a == goarch {
			return true
		}
	}
	return false
}

// runner runs ssh for one remote session.
type runner struct {
	log        *slog.Logger
	t          *Target
	sshOpts    string
	knownHosts string
	// ssh is the ssh program: "ssh", looked up in PATH as Nix does.
	ssh string
}

// output runs a remote script without a terminal and returns its stdout.
func (r *runner) output(ctx context.Context, script string, stdin io.Reader) (string, error) {
	args := r.t.sshArgs(r.sshOpts, r.knownHosts, false, shCommand(script))
	cmd := exec.CommandContext(ctx, r.ssh, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r.log.Debug("ssh", "args", strings.Join(args, " "))
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "no message"
		}
		return stdout.String(), fmt.Errorf("ssh %s: %w: %s", r.t.Dest, err, msg)
	}
	return stdout.String(), nil
}

// Enter enters the kept directory o.Dir on the builder and returns the
// remote command's exit status. A signal (SIGINT, SIGTERM, SIGHUP) ends
// the session with an *interrupt.Error; the builder is cleaned up in
// every case.
func Enter(ctx context.Context, o Options) (status int, err error) {
	if o.Target == nil {
		return 0, errors.New("enter a remote build: no builder given")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		return 0, &Error{fmt.Errorf("find ssh: %w", err), "install OpenSSH's client, which Nix uses for remote builders too"}
	}
	r := &runner{log: log, t: o.Target, sshOpts: os.Getenv("NIX_SSHOPTS"), ssh: ssh}
	if o.Target.HostKey != "" {
		line, err := o.Target.knownHostsLine()
		if err != nil {
			return 0, err
		}
		kh, err := os.CreateTemp("", "nbs-known-hosts-")
		if err != nil {
			return 0, fmt.Errorf("write known hosts file: %w", err)
		}
		defer os.Remove(kh.Name())
		_, werr := kh.WriteString(line)
		if cerr := kh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return 0, fmt.Errorf("write known hosts file: %w", werr)
		}
		r.knownHosts = kh.Name()
	}

	// From here on a signal ends the session, and the cleanup still runs.
	ctx, signals := interrupt.Catch(ctx)
	defer signals.Stop()

	ship, shipIn := "", io.Reader(nil)
	if o.Replay != nil {
		ship, shipIn = path.Base(o.Replay.Drv), bytes.NewReader(o.Replay.Derivation)
	}
	out, err := r.output(ctx, probeScript(ship), shipIn)
	p := parseProbe(out)
	if p.dir != "" {
		defer func() {
			// A fresh context: the session's may be cancelled.
			cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer ccancel()
			if _, cerr := r.output(cctx, cleanupScript(p.dir), nil); cerr != nil {
				log.Warn(fmt.Sprintf("could not remove %s on %s: %v", p.dir, o.Target.Dest, cerr))
			}
		}()
	}
	if err != nil {
		if serr := signals.Err(); serr != nil {
			return 0, serr
		}
		try := "ssh " + o.Target.Dest
		if o.Target.Port != "" {
			try = "ssh -p " + o.Target.Port + " " + o.Target.Dest
		}
		return 0, &Error{err, "check that '" + try + "' works as Nix uses it (the builder line's key, NIX_SSHOPTS)"}
	}
	if p.dir == "" {
		return 0, fmt.Errorf("%s: could not make a temporary directory there: %q", o.Target.Dest, out)
	}
	if o.Replay != nil && !p.shipped {
		return 0, fmt.Errorf("%s: could not write the derivation into %s there: %q", o.Target.Dest, p.dir, out)
	}

	nbs := p.nbs
	if nbs != "" && o.Replay != nil && !p.replay {
		// Too old to replay a shipped derivation: a copy of this one
		// does, when it can run there.
		log.Debug("the builder's nbs has no replay --remote; using a copy of this one", "nbs", nbs)
		if unameMatches(p.uname, runtime.GOOS, runtime.GOARCH) {
			nbs = ""
		} else {
			return 0, &Error{
				fmt.Errorf("the nbs on %s (%s) is too old to replay a build (it has no replay --remote), and this nbs (%s/%s) cannot run there (uname -sm: %s)", o.Target.Dest, nbs, runtime.GOOS, runtime.GOARCH, p.uname),
				"install this version of nbs on the builder",
			}
		}
	}
	if nbs == "" {
		if !unameMatches(p.uname, runtime.GOOS, runtime.GOARCH) {
			return 0, &Error{
				fmt.Errorf("%s has no nbs on its PATH, and this nbs (%s/%s) cannot run there (uname -sm: %s)", o.Target.Dest, runtime.GOOS, runtime.GOARCH, p.uname),
				"install nbs on the builder so that 'command -v nbs' finds it there (e.g. nix profile install github:nix-build-shell/nbs), or build it for that machine (GOOS=linux GOARCH=arm64 for aarch64) and put it on its PATH",
			}
		}
		self, err := os.Open("/proc/self/exe")
		if err != nil {
			if exe, eerr := os.Executable(); eerr == nil {
				self, err = os.Open(exe)
			}
		}
		if err != nil {
			return 0, fmt.Errorf("read this nbs to copy it to %s: %w", o.Target.Dest, err)
		}
		defer self.Close()
		log.Debug("copying nbs to the builder", "dir", p.dir)
		if _, err := r.output(ctx, copyScript(p.dir), self); err != nil {
			if serr := signals.Err(); serr != nil {
				return 0, serr
			}
			return 0, fmt.Errorf("copy nbs to %s: %w", o.Target.Dest, err)
		}
		nbs = p.dir + "/nbs"
		p.run = true // this nbs
	}

	args, env := shellArgs(o, p.run), ""
	if o.Replay != nil {
		args = replayArgs(o, p.dir+"/"+ship)
	}
	if o.Replay != nil || nbs == p.dir+"/nbs" {
		// The remote nbs's cache (Nix's answers, closures of store
		// paths) goes into the private directory, which the cleanup
		// removes: a replay's, and that of the copy nbs brought, which
		// leaves nothing behind. An nbs installed there keeps its own,
		// as when it runs there by itself.
		env = "export XDG_CACHE_HOME=" + shquote.Quote(p.dir) + "; "
	}
	tty := term.IsTerminal(o.Stdin) && term.IsTerminal(o.Stdout)
	sshArgs := o.Target.sshArgs(r.sshOpts, r.knownHosts, tty, shCommand(runScript(p.dir, nbs, args, env)))
	log.Debug("ssh", "args", strings.Join(sshArgs, " "))
	// Not CommandContext: a signal reaches ssh as SIGTERM, which ends it
	// cleanly, restores the terminal it put in raw mode and hangs up the
	// remote pty (the remote nbs then ends its sandbox).
	cmd := exec.Command(ssh, sshArgs...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	if err := signals.Start(cmd, syscall.SIGTERM); err != nil {
		if serr := signals.Err(); serr != nil {
			return 0, serr
		}
		return 0, fmt.Errorf("start ssh: %w", err)
	}
	werr := cmd.Wait()
	if serr := signals.Err(); serr != nil {
		return 0, serr
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return 0, fmt.Errorf("ssh %s: %w", o.Target.Dest, werr)
	}
	return interrupt.Status(cmd.ProcessState), nil
}
