// Package report is the contract between the escape program
// (testdata/escape), which runs inside an nbs sandbox and tries to break
// out of it, and the end-to-end tests that read what it found
// (cmd/nbs/e2e_containment_test.go): one JSON Record a line, each naming
// its Check, the Arg it was applied to and how it ended.
//
// A check is either an attempt, which must fail for the sandbox to hold
// (Check.Fact is false), or a fact about what the sandbox looks like,
// which the tests compare with what they expect.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Check names what the program tried or looked at; Record.Arg says on
// what (a path, a pid, a file descriptor, a store entry, …).
type Check string

// Facts: what the sandbox looks like.
const (
	FD            Check = "fd"     // Arg: an inherited descriptor above 2; Detail: its target
	FDs           Check = "fds"    // the inherited descriptors
	Status        Check = "status" // Arg: a field of /proc/self/status
	Ls            Check = "ls"     // Arg: a directory; Detail: its entries
	Proc1Root     Check = "proc 1 root"
	Proc1RootIsMe Check = "proc 1 root is /" // Detail: true or false
	Mount         Check = "mount"            // Arg: a mount point; Detail: "fstype options"
	StoreEntries  Check = "store entries"
	StoreMount    Check = "store mount"    // Arg: a store entry; Detail: ro or rw
	StoreWritable Check = "store writable" // Arg: a store entry; Detail: "none of N" or the writable paths
	// StoreDirMkdir makes a directory in /nix/store itself: by design
	// (Nix's store dir is writable for $out; ours is private).
	StoreDirMkdir Check = "store dir mkdir"
	NetInterfaces Check = "net interfaces"
	NetRoutesV4   Check = "net routes v4"
	NetRoutesV6   Check = "net routes v6 not via lo"
	IPRoute       Check = "ip route"
	// NetTCPImmediate: whether NetTCP to Arg failed within a second.
	NetTCPImmediate Check = "net tcp immediate"
	// NetUDPLoopback sends a datagram to the sandbox's own loopback: it
	// goes out; the test checks that the host's socket got nothing.
	NetUDPLoopback Check = "net udp loopback"
	TTY            Check = "tty fd" // Arg: 0, 1 or 2; Detail: "not a terminal", "sandbox pty" or "foreign terminal M:N"
	TTYInjected    Check = "tty injections accepted"
	TTYOwnQueue    Check = "tty own queue" // the injected lines found in the sandbox's own pty, or "not drained"
	PtmxType       Check = "ptmx type"
	PtmxDevpts     Check = "ptmx pty devpts"      // the device of the devpts a new pty is in
	PtmxInPts      Check = "ptmx pty in /dev/pts" // true or false
	ProcExe        Check = "proc exe"             // Arg: a pid; Detail: "link major:minor:inode"
	ProcMaps       Check = "proc maps"            // Arg: a pid; Detail: the mapped files' major:minor:inode
	PidsVisible    Check = "pids visible"
	SetidFiles     Check = "setid files"
	TestFileMode   Check = "test file mode" // after the chmod attempts
	MakeRprivate   Check = "make-rprivate /"
	Bind           Check = "bind"          // Arg: a read-only mount bound elsewhere
	ChrootEscape   Check = "chroot escape" // Detail: the root reached
	NestedUserns   Check = "nested userns" // running the nested checks
	PPid           Check = "ppid"
	HostPidsGiven  Check = "host pids given"
	Ptrace         Check = "ptrace" // Arg: a visible pid; "ok: EXE" or an errno
	PlantLinks     Check = "plant links"
	// The kill mode.
	Pid             Check = "pid"
	UIDMap          Check = "uid_map"
	KillAll         Check = "kill -1"                             // Arg: the pid it was sent from
	KilledFromChild Check = "sleepers after kill -1 from a child" // how the two sleepers ended
	KilledFromPID1  Check = "sleeper after kill -1 from pid 1"
	Linger          Check = "linger"   // starting the process that tries to outlive the sandbox
	Watchdog        Check = "watchdog" // Arg: the mode that hung
	// The view mode: what /build shows of the kept directory.
	ViewLink  Check = "view link"  // Arg: a symlink in /build; Detail: "symlink TARGET" (not followed)
	ViewWrite Check = "view write" // Arg: a change made in /build (append, chmod, …); ok, or how it failed
)

// Attempts: each must fail.
const (
	// Setup is a step some attempts need (Arg names it); where it
	// fails, they are not made.
	Setup           Check = "setup"
	Setresuid       Check = "setresuid 0"
	Setresgid       Check = "setresgid 0"
	Host            Check = "host"         // Arg: a host path that must not show
	StoreCreate     Check = "store create" // Arg: a store entry
	StoreMkdir      Check = "store mkdir"
	StoreOpenWrite  Check = "store open-write"      // a file in the store
	StoreLink       Check = "store link"            // a hard link to it
	StoreOpenWriteF Check = "store open-write file" // the first file below a store directory
	StoreLinkF      Check = "store link file"
	StoreChmod      Check = "store chmod"
	StoreUtimes     Check = "store utimes"
	StoreRename     Check = "store rename"
	NetTCP          Check = "net tcp" // Arg: host:port
	NetUDP          Check = "net udp"
	NetUnix         Check = "net unix" // Arg: a socket's name
	TTYSteal        Check = "tty TIOCSCTTY steal"
	TTYInject       Check = "tty inject" // Arg: 0, 1, 2 (a descriptor) or /dev/tty
	ProcExeWrite    Check = "proc exe write"
	ProcExeRdwr     Check = "proc exe rdwr"
	ProcExeAppend   Check = "proc exe append"
	Chmod           Check = "chmod" // Arg: the mode
	Fchmod          Check = "fchmod"
	Fchmodat        Check = "fchmodat"
	ChmodSyscall    Check = "chmod syscall"
	Fchmodat2       Check = "fchmodat2"
	Mknod           Check = "mknod block device"
	Chroot          Check = "chroot"
	Remount         Check = "remount rw"        // Arg: a read-only mount
	MountSetattr    Check = "mount_setattr -ro" // clearing MOUNT_ATTR_RDONLY
	MountSetattrRec Check = "mount_setattr -ro recursive"
	Setxattr        Check = "setxattr" // Arg: the attribute's name
	Lsetxattr       Check = "lsetxattr"
	Fsetxattr       Check = "fsetxattr"
	Setxattrat      Check = "setxattrat"
	SetxattratFD    Check = "setxattrat fd"
	HandleFSRoot    Check = "open_by_handle_at fs root"
	HandleTmp       Check = "open_by_handle_at /tmp via /build"
	OpenWrite       Check = "open-write" // Arg: a host-global file in /proc, or a read-only mount
	Umount          Check = "umount"
	Below           Check = "below" // what an unmount revealed
	BindCreate      Check = "bind create"
	BindOpenWrite   Check = "bind open-write"
	CreateIn        Check = "create in"
	HostPidKill0    Check = "host pid kill 0" // Arg: nbs or test
	HostPidPtrace   Check = "host pid ptrace attach"
	HostPidPidfd    Check = "host pid pidfd_open"
	HostPidProc     Check = "host pid /proc"
	KillHostCanary  Check = "kill host canary" // Arg: the canary's host pid
	KillHostTest    Check = "kill 0 host test"
	// ViewPath: a host path of the view (the kept directory, the work
	// directories' base and what is in it: upper, work, lower) must not
	// be there (lstat).
	ViewPath Check = "view host path"
	// ViewFollow opens what a symlink in /build points to: never the
	// host's file (a link to /etc/shadow finds none).
	ViewFollow Check = "view follow"
	// ViewFifoHost opens a fifo in /build for writing, without
	// waiting: the test holds the kept directory's own fifo open for
	// reading, so success would mean /build's fifo is the host's
	// (ENXIO: no reader, a fifo of its own).
	ViewFifoHost Check = "view fifo is the host's"
	// ViewDevice opens a device node of the kept directory through
	// /build (a copy leaves it out; a view shows it, mounted in the
	// sandbox's user namespace, whose file systems open no device).
	ViewDevice Check = "view device"
	// ViewSocket connects to a unix socket of the kept directory
	// through /build while a host process listens on the kept one (a
	// copy leaves it out; in a view it is the view's inode, bound by
	// nobody: ECONNREFUSED).
	ViewSocket Check = "view socket"
)

// Args the program and the test share.
const (
	// TestNet is TEST-NET-1 (RFC 5737) and the discard port: with no
	// route no packet can leave, and connect must say so at once.
	TestNet = "192.0.2.1:9"
	// DaemonSocket is the nix-daemon's socket on the host.
	DaemonSocket = "/nix/var/nix/daemon-socket/socket"
	// The extended attributes set: a user one, and a file capability
	// (that could grant privileges to whoever runs the file).
	XattrUser       = "user.nbs"
	XattrCapability = "security.capability"
)

// facts are the checks of the first block. One left out of it would
// count as an attempt: the stricter reading, which fails loudly.
var facts = map[Check]bool{}

func init() {
	for _, c := range []Check{FD, FDs, Status, Ls, Proc1Root, Proc1RootIsMe, Mount, StoreEntries,
		StoreMount, StoreWritable, StoreDirMkdir, NetInterfaces, NetRoutesV4, NetRoutesV6, IPRoute,
		NetTCPImmediate, NetUDPLoopback, TTY, TTYInjected, TTYOwnQueue, PtmxType, PtmxDevpts, PtmxInPts,
		ProcExe, ProcMaps, PidsVisible, SetidFiles, TestFileMode, MakeRprivate, Bind, ChrootEscape,
		NestedUserns, PPid, HostPidsGiven, Ptrace, PlantLinks,
		Pid, UIDMap, KillAll, KilledFromChild, KilledFromPID1, Linger, Watchdog, ViewLink, ViewWrite} {
		facts[c] = true
	}
}

// Fact says whether c reports what the sandbox looks like rather than
// an attempt that must fail.
func (c Check) Fact() bool { return facts[c] }

// Outcome is how a check ended.
type Outcome string

const (
	OK       Outcome = "ok"        // the call went through; Detail may say what it reached
	Errno    Outcome = "errno"     // the call failed with Record.Errno
	Error    Outcome = "error"     // it failed, other than with an errno: Detail
	Value    Outcome = "value"     // a fact: Detail
	NotTried Outcome = "not tried" // Detail says why
	Timeout  Outcome = "timeout"
)

// Record is one result, a line of the program's output.
type Record struct {
	// Check comes first: a reader finds records by their opening
	// `{"check":` among what else shares the terminal.
	Check Check  `json:"check"`
	Arg   string `json:"arg,omitempty"`
	// Nested: made in a nested user and mount namespace of the
	// sandbox, as root there with every capability in it.
	Nested  bool    `json:"nested,omitempty"`
	Outcome Outcome `json:"outcome"`
	Errno   string  `json:"errno,omitempty"` // the errno's name (EPERM, EROFS, …)
	Detail  string  `json:"detail,omitempty"`
}

// Key identifies a record: no two of one run share it.
type Key struct {
	Check  Check
	Arg    string
	Nested bool
}

func (k Key) String() string {
	s := string(k.Check)
	if k.Arg != "" {
		s += " " + k.Arg
	}
	if k.Nested {
		s = "nested " + s
	}
	return s
}

// Key is the record's key.
func (r Record) Key() Key { return Key{Check: r.Check, Arg: r.Arg, Nested: r.Nested} }

// Result is the outcome in a word: "ok" (with what was reached after a
// colon), the errno's name, the value, "not tried (why)".
func (r Record) Result() string {
	switch r.Outcome {
	case OK:
		if r.Detail != "" {
			return "ok: " + r.Detail
		}
		return "ok"
	case Errno:
		return r.Errno
	case Value:
		return r.Detail
	case Error:
		return "error: " + r.Detail
	case NotTried:
		return "not tried (" + r.Detail + ")"
	}
	return string(r.Outcome)
}

func (r Record) String() string { return r.Key().String() + " = " + r.Result() }

// Write writes r as one line.
func Write(w io.Writer, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// opening starts every record line.
const opening = `{"check":`

// Results are the records of one run, by key.
type Results map[Key]Record

// Parse reads the records in out, a run's output. Lines without a
// record are passed over (the terminal tests read what nbs relayed from
// the sandbox's pty: \r\n line ends, the echo of what was injected);
// a garbled record, or a key seen twice, is an error.
func Parse(out string) (Results, []error) {
	res := Results{}
	var errs []error
	for _, line := range strings.Split(out, "\n") {
		i := strings.Index(line, opening)
		if i < 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal([]byte(strings.TrimRight(line[i:], "\r")), &r); err != nil {
			errs = append(errs, fmt.Errorf("a garbled record %q: %v", line, err))
			continue
		}
		if _, dup := res[r.Key()]; dup {
			errs = append(errs, fmt.Errorf("the program reported %s twice", r.Key()))
		}
		res[r.Key()] = r
	}
	return res, errs
}

// Args lists, sorted, what c was applied to, in the nested namespace or
// not.
func (rs Results) Args(c Check, nested bool) []string {
	var as []string
	for k := range rs {
		if k.Check == c && k.Nested == nested {
			as = append(as, k.Arg)
		}
	}
	sort.Strings(as)
	return as
}
