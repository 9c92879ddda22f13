package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nix-build-shell/nbs/nix"
)

// RunningBuilds lists the builders running on this machine, oldest
// first. A builder is a process with NIX_BUILD_TOP in its environment
// whose parent is Nix (the daemon's worker, or root's nix-build, nix
// build, nix-store): that is how Nix's startBuilder leaves it, with or
// without the sandbox. Reading another user's environment needs root;
// without it the list is empty and ErrNeedRoot says why.
func RunningBuilds() ([]Build, error) {
	return runningBuilds("/proc")
}

func runningBuilds(proc string) ([]Build, error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	btime := bootTime(proc)
	stats := map[int]procStat{}
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			if st, err := readStat(proc, pid); err == nil {
				stats[pid] = st
			}
		}
	}
	var out []Build
	denied := false
	for pid, st := range stats {
		if !isNix(st.parentComm(proc)) {
			continue
		}
		env, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "environ"))
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				denied = true
			}
			continue
		}
		vars := splitEnviron(env)
		top := lookupEnv(vars, "NIX_BUILD_TOP")
		if top == "" {
			continue
		}
		b := Build{PID: pid, Name: lookupEnv(vars, "name"), Out: lookupEnv(vars, "out"), Env: vars}
		if !btime.IsZero() {
			b.Started = btime.Add(time.Duration(st.startTicks) * time.Second / clockTicks)
		}
		b.Drv = findDrv(b.Name, b.Out)
		b.Doing = doing(proc, pid, stats)
		b.Top = filepath.Join(proc, strconv.Itoa(pid), "root", path.Clean("/"+top))
		out = append(out, b)
	}
	sort.Slice(out, func(i, k int) bool {
		if !out[i].Started.Equal(out[k].Started) {
			return out[i].Started.Before(out[k].Started)
		}
		return out[i].PID < out[k].PID
	})
	if len(out) == 0 && denied && os.Geteuid() != 0 {
		return nil, ErrNeedRoot
	}
	return out, nil
}

// clockTicks is USER_HZ, what /proc/PID/stat counts in: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procStat is what nbs reads of /proc/PID/stat.
type procStat struct {
	ppid       int
	startTicks int64
}

func readStat(proc string, pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	st, err := parseStat(b)
	if err != nil {
		return procStat{}, fmt.Errorf("%s/%d/stat: %w", proc, pid, err)
	}
	return st, nil
}

// parseStat reads the parent and the start time of /proc/PID/stat.
func parseStat(b []byte) (procStat, error) {
	// comm may hold spaces and parentheses: the fields start after the
	// last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// state ppid pgrp session tty tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime priority nice threads
	// itrealvalue starttime: starttime is field 22, f[19].
	if len(f) < 20 {
		return procStat{}, errors.New("too few fields")
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseInt(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, errors.New("bad ppid or start time")
	}
	return procStat{ppid: ppid, startTicks: start}, nil
}

func (s procStat) parentComm(proc string) string {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(s.ppid), "comm"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// isNix: the programs that start builders (the daemon's worker keeps the
// daemon's name).
func isNix(comm string) bool {
	switch comm {
	case "nix-daemon", "nix-build", "nix", "nix-store", "nix-shell", "nix-env":
		return true
	}
	return false
}

func bootTime(proc string) time.Time {
	f, err := os.Open(filepath.Join(proc, "stat"))
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(n, 0)
			}
		}
	}
	return time.Time{}
}

func splitEnviron(b []byte) []string {
	var out []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if len(kv) > 0 {
			out = append(out, string(kv))
		}
	}
	return out
}

// findDrv finds the .drv that has out among its outputs: the store's
// *-NAME.drv files, read with the .drv parser. "" when there is none (or
// no out: a builder of a content-addressed derivation has a placeholder).
func findDrv(name, out string) string {
	if name == "" || !nix.IsStorePath(out) {
		return ""
	}
	cands, _ := filepath.Glob(filepath.Join(nix.StoreDir, "*-"+globQuote(name)+".drv"))
	for _, c := range cands {
		d, err := nix.ReadDerivation(c)
		if err != nil {
			continue
		}
		for _, o := range d.Outputs {
			if o.Path == out {
				return c
			}
		}
	}
	return ""
}

func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// doing is what a build runs now: the command line of its newest
// process (the builder's own when it has none). stdenv's phase is not
// visible from outside: runPhase keeps it in a shell variable and tells
// only the build log.
func doing(proc string, pid int, stats map[int]procStat) string {
	newest, best := pid, int64(-1)
	for p, st := range stats {
		if p != pid && descends(p, pid, stats) && st.startTicks >= best {
			newest, best = p, st.startTicks
		}
	}
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(newest), "cmdline"))
	if err != nil {
		return ""
	}
	args := splitEnviron(b)
	for i, a := range args {
		if i == 0 {
			a = path.Base(a)
		}
		args[i] = oneLine(a)
	}
	s := strings.Join(args, " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func descends(p, ancestor int, stats map[int]procStat) bool {
	for i := 0; i < 64 && p > 1; i++ {
		st, ok := stats[p]
		if !ok {
			return false
		}
		if st.ppid == ancestor {
			return true
		}
		p = st.ppid
	}
	return false
}

func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}
