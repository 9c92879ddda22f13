package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Without a PID namespace, nothing ends the processes a command leaves
// behind (a background job, a daemon that double-forked) when the
// command itself ends. nbs makes itself their subreaper: orphans of the
// command become nbs's children instead of init's, and once the command
// has ended nbs kills every new child and what runs below it, as the
// kernel does for a PID namespace whose init ends.

// becomeSubreaper makes nbs the subreaper of its descendants.
func becomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", err)
	}
	return nil
}

// parents maps every process's pid to its parent's, from /proc.
func parents() map[int]int {
	ps, _ := filepath.Glob("/proc/[0-9]*/stat")
	m := make(map[int]int, len(ps))
	for _, p := range ps {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold anything, ')' too.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		pid, err1 := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if len(f) < 2 || err1 != nil {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			m[pid] = ppid
		}
	}
	return m
}

// children lists pid's children.
func children(pid int) map[int]bool {
	c := map[int]bool{}
	for p, pp := range parents() {
		if pp == pid {
			c[p] = true
		}
	}
	return c
}

// endOrphans kills nbs's children that are not in before, and everything
// below them, until none is left, and reaps them. Children that were
// there before (none, in nbs) are left alone.
func endOrphans(before map[int]bool) {
	self := os.Getpid()
	for round := 0; round < 1000; round++ {
		pp := parents()
		var mine []int
		var below []int
		for pid := range pp {
			// Walk up to nbs: a descendant of a new child is ours.
			top, ok := pid, false
			for i := 0; i < 1000; i++ {
				parent, known := pp[top]
				if !known || parent == 0 {
					break
				}
				if parent == self {
					ok = !before[top]
					break
				}
				top = parent
			}
			if !ok {
				continue
			}
			if top == pid {
				mine = append(mine, pid)
			} else {
				below = append(below, pid)
			}
		}
		if len(mine) == 0 && len(below) == 0 {
			return
		}
		for _, pid := range append(below, mine...) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		// Our own children are ours to reap; those below are their
		// parents', or become ours when their parents die.
		for _, pid := range mine {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	}
}
