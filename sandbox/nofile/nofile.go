// Package nofile keeps the soft RLIMIT_NOFILE nbs was started with, which
// package syscall raises for nbs itself in its init (go.dev/issue/46279)
// and restores only in the processes it starts (syscall's forkExec and
// Exec). The sandbox's child is forked by hand and execs the build's
// shell itself, so it restores the limit from here (compileExec), as
// os/exec would have.
//
// The package imports nothing, so its init runs before syscall's: Go
// initializes, at each step, the first package sorted by import path
// whose imports are initialized (The Go Programming Language
// Specification, "Package initialization", Go 1.21 on), and
// "github.com/…" sorts before "syscall".
package nofile

// Limit is an rlimit as the kernel has it.
type Limit struct{ Cur, Max uint64 }

var start Limit
var known bool

// Start is the limit when nbs started; ok is false where it is unknown.
func Start() (l Limit, ok bool) { return start, known }
