package wrapper

import (
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
)

// Invocation is what nbs runs for `nbs build ARGS`: which program, with
// which arguments, and the builders the build may use.
type Invocation struct {
	// Program is the program to run: the caller's choice, or
	// DefaultProgram's.
	Program string
	// Args are the user's arguments with nbs's additions (see Command).
	Args []string
	// Builders are the builders in use (--builders, --option builders or
	// nix.conf's, @FILE lines expanded) as the user or nix.conf wrote
	// them, before nbs changed them.
	Builders []Builder
	// KeepFailedOff: the user turned keep-failed off (--no-keep-failed,
	// --option keep-failed false); nbs then leaves the builders alone.
	KeepFailedOff bool
}

// Command returns how to run program (DefaultProgram's choice when "")
// for the user's arguments: with --keep-failed, and for the new CLI
// "build", -L and the experimental features it needs (see buildArgs and
// withFeatures); with the builders in use changed so that each keeps a
// failed build's directory, unless the user turned keep-failed off or
// the builders come from nix.conf and the nix-daemon would ignore a
// change (this user is not trusted). host is what Nix said of itself
// (nil when it could not be asked).
func Command(program string, userArgs []string, host *nix.Host, log *slog.Logger) Invocation {
	if program == "" {
		program = DefaultProgram(userArgs)
	}
	if log == nil {
		log = discard
	}
	inv := Invocation{Program: program, Args: buildArgs(program, userArgs)}
	c := readArgs(syntaxOf(program), userArgs)
	if isNewCLI(program) {
		inv.Args = withFeatures(program, inv.Args, neededFeatures(host, c.flakeRefs()))
	}
	inv.KeepFailedOff = keepFailedOff(c)
	value, given := c.builders()
	if !given && host != nil {
		value = host.Settings["builders"]
	}
	if value == "" {
		return inv
	}
	changed, builders, rewrite, err := RewriteBuilders(value, os.ReadFile)
	inv.Builders = builders
	switch {
	case err != nil:
		log.Warn("cannot read the builders; they are passed to Nix unchanged", "err", err)
	case !rewrite || inv.KeepFailedOff:
	case !given && !trustedByNix(host):
		// Nix's daemon ignores a builders setting from an untrusted user
		// (with a warning): its own builders apply, unchanged.
		log.Debug("builders from nix.conf left unchanged: not a trusted user of the nix-daemon")
	default:
		log.Debug("builders told to keep failed build directories", "builders", changed)
		inv.Args = withBuilders(program, inv.Args, changed)
	}
	return inv
}

// isNewCLI reports whether program (a name or a path) is the new CLI,
// nix, rather than nix-build.
func isNewCLI(program string) bool { return filepath.Base(program) == "nix" }

// buildArgs returns the arguments for program: the user's, with
// --keep-failed added unless they gave --keep-failed, -K or a keep-failed
// setting of their own (--option keep-failed …, --no-keep-failed). For the
// new CLI (program "nix") it also adds "build" unless they gave it, and -L
// (build logs, as nix-build shows them) unless they chose
// -L/--print-build-logs/--no-print-build-logs or a --log-format. nbs's
// additions come right after "build" (or first, for nix-build), so that
// a "--" among the user's arguments still ends the options.
func buildArgs(program string, userArgs []string) []string {
	c := readArgs(syntaxOf(program), userArgs)
	var add []string
	if !c.has("--keep-failed", "-K", "--no-keep-failed") && !c.optionFor("keep-failed", "extra-keep-failed") {
		add = append(add, "--keep-failed")
	}
	if isNewCLI(program) && !c.has("-L", "--print-build-logs", "--no-print-build-logs", "--log-format") && !c.hasPrefix("--log-format=") {
		add = append(add, "-L")
	}
	if isNewCLI(program) && c.subcommand() < 0 {
		return append(append([]string{"build"}, add...), userArgs...)
	}
	return insertOptions(program, userArgs, add...)
}

// hasPrefix reports whether an option starts with prefix.
func (c cmdline) hasPrefix(prefix string) bool {
	for _, o := range c.Options {
		if strings.HasPrefix(o.Name, prefix) {
			return true
		}
	}
	return false
}

// keepFailedOff reports whether the user turned keep-failed off
// (--no-keep-failed, --option keep-failed false).
func keepFailedOff(c cmdline) bool {
	for _, o := range c.Options {
		if o.Name == "--no-keep-failed" || o.Name == "--option" && o.value(0) == "keep-failed" && o.value(1) == "false" && len(o.Values) == 2 {
			return true
		}
	}
	return false
}

// builders returns the builders setting given on the command line
// (--builders V or --option builders V; the last one wins, as in Nix).
func (c cmdline) builders() (value string, ok bool) {
	vs := c.settingValues([]string{"--builders"}, "builders")
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1].Text, true
}

// withBuilders returns args with the builders setting set to value: every
// --builders or --option builders value of the user's is replaced where it
// is, and when there is none, "--builders value" is added at the front
// (nix-build) or right after "build" (the new CLI, program "nix").
func withBuilders(program string, args []string, value string) []string {
	out := append([]string(nil), args...)
	replaced := false
	for _, v := range readArgs(syntaxOf(program), args).settingValues([]string{"--builders"}, "builders") {
		if !v.Part {
			out[v.At], replaced = value, true
		}
	}
	if replaced {
		return out
	}
	return insertOptions(program, out, "--builders", value)
}

// insertOptions puts opts where nbs's own options go: first for
// nix-build, right after "build" for the new CLI.
func insertOptions(program string, args []string, opts ...string) []string {
	at := 0
	if isNewCLI(program) {
		if b := readArgs(newSyntax, args).subcommand(); b >= 0 {
			at = b + 1
		}
	}
	out := make([]string, 0, len(args)+len(opts))
	out = append(append(append(out, args[:at]...), opts...), args[at:]...)
	return out
}

// withFeatures returns args for the new CLI (program "nix") with
// "--extra-experimental-features 'FEATURES'" added right after "build",
// for this call only: nix-command and flakes are experimental from Nix 2.4
// on (still in 2.34), and `nix build .#pkg` fails without them unless
// nix.conf enables them. Nothing is added for nix-build, for an empty
// features, or when the user set experimental-features themselves (their
// choice stands); an --extra-experimental-features of theirs adds to ours.
func withFeatures(program string, args []string, features []string) []string {
	if len(features) == 0 || !isNewCLI(program) {
		return args
	}
	c := readArgs(newSyntax, args)
	if c.has("--experimental-features") || c.optionFor("experimental-features") {
		return args
	}
	return insertOptions(program, args, "--extra-experimental-features", strings.Join(features, " "))
}

// neededFeatures are the experimental features the new CLI needs for this
// call: nix-command, and flakes for a flake reference, from Nix 2.4 on,
// less those nix.conf enables. nix-command stays even so: the settings
// were read with it switched on, so they always list it.
func neededFeatures(host *nix.Host, flakes bool) []string {
	want := []string{"nix-command"}
	if flakes {
		want = append(want, "flakes")
	}
	if host == nil {
		return want
	}
	if !host.Version.AtLeast(2, 4, 0) {
		return nil
	}
	enabled := host.Settings.List("experimental-features")
	var out []string
	for _, w := range want {
		if w == "nix-command" || !slices.Contains(enabled, w) {
			out = append(out, w)
		}
	}
	return out
}

// trustedByNix reports whether this user's settings reach the builds:
// root's always (no daemon, or a trusted one); otherwise the daemon's
// trusted-users must name the user, one of their groups (@group) or *.
func trustedByNix(host *nix.Host) bool {
	if os.Geteuid() == 0 {
		return true
	}
	u, err := user.Current()
	if err != nil {
		return false
	}
	groups := map[string]bool{}
	if gids, err := u.GroupIds(); err == nil {
		for _, gid := range gids {
			if g, err := user.LookupGroupId(gid); err == nil {
				groups[g.Name] = true
			}
		}
	}
	for _, t := range host.Settings.List("trusted-users") {
		if t == "*" || t == u.Username || strings.HasPrefix(t, "@") && groups[t[1:]] {
			return true
		}
	}
	return false
}

// NotKept is why a remote builder kept no build directory of a failure.
type NotKept int

const (
	// KeepFailedOff: the user turned keep-failed off.
	KeepFailedOff NotKept = iota + 1
	// KeptSomewhere: Nix says it kept it on the builder, but not where.
	KeptSomewhere
	// DaemonIgnored: nbs asked an ssh-ng:// builder, whose nix-daemon
	// --stdio hands the build to the builder's own nix-daemon, which
	// ignores options from the connection.
	DaemonIgnored
	// BuilderIgnored: nbs (or the user) asked an ssh:// builder, which
	// did not keep it all the same: its nix.conf must say so.
	BuilderIgnored
	// NeverPassedSSHNG: Nix never passes --keep-failed to ssh-ng://
	// builders, and nbs could not ask (builders of an untrusted user's
	// nix-daemon).
	NeverPassedSSHNG
	// RootOnly: Nix passes --keep-failed only to ssh:// builders that
	// build as root without a daemon, and nbs could not ask.
	RootOnly
)

// WhyNotKept says why the builder of fl, a remote failure with no kept
// directory, kept none.
func (inv Invocation) WhyNotKept(fl Failure) NotKept {
	if inv.KeepFailedOff {
		return KeepFailedOff
	}
	if fl.KeptRemote {
		return KeptSomewhere
	}
	// The URI Nix printed asks for keep-failed already: nbs changed it,
	// or the user wrote it so. KeepFailedURI keeps the scheme, so the
	// printed URI's is the builder's.
	_, wouldChange := KeepFailedURI(fl.Builder)
	asked := !wouldChange && strings.HasPrefix(fl.Builder, "ssh")
	ng := strings.HasPrefix(fl.Builder, "ssh-ng://")
	switch {
	case asked && ng:
		return DaemonIgnored
	case asked:
		return BuilderIgnored
	case ng:
		return NeverPassedSSHNG
	default:
		return RootOnly
	}
}
