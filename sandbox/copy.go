package sandbox

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Owner is a numeric user and group.
type Owner struct{ UID, GID int }

// copyOptions controls copyTree.
type copyOptions struct {
	// Chown, when set (nbs running as root via sudo), makes every copied
	// entry, dst included, owned by UID:GID (lchown). When nil nothing is
	// chowned and entries belong to whoever runs the copy.
	Chown *Owner

	// Progress, when set, is called about ten times a second while the
	// copy runs and once more at the end with Done set. Calls never
	// overlap. Setting it costs one extra pass over src (stat only) to
	// fill in the totals.
	Progress func(p CopyProgress)

	// Workers is the number of files whose data is copied in parallel;
	// 0 means 4.
	Workers int
}

// CopyProgress is what copyOptions.Progress is told. Files and Bytes count
// regular files whose data has been copied; the totals come from a scan of
// src made before the copy starts.
type CopyProgress struct {
	Files, Bytes           int64
	TotalFiles, TotalBytes int64
	Done                   bool
}

// copyReport says what copyTree made.
type copyReport struct {
	Files     int64 // regular files whose data was copied
	Dirs      int64 // directories, dst included
	Symlinks  int64
	Fifos     int64
	HardLinks int64 // extra names linked to an already copied file
	Bytes     int64 // file data copied

	// Skipped lists the entries that cannot be recreated and were left
	// out, as "path (socket)", "path (character device)" or
	// "path (block device)", path relative to src (quoted Go-style if
	// it holds a newline or is not UTF-8).
	Skipped []string
}

// unreadableError is returned by copyTree when some entries of src could
// not be read (EACCES). Everything else has been copied; the entries named
// in Paths are absent from the copy rather than replaced by empty
// placeholders.
type unreadableError struct {
	Dir   string   // src as given to copyTree
	Paths []string // relative to Dir, in the order they were met
	Err   error    // the first error, e.g. EACCES
}

// unreadableShown is how many paths the message of an unreadableError names.
const unreadableShown = 5

func (e *unreadableError) Error() string {
	var b strings.Builder
	noun := "files"
	if len(e.Paths) == 1 {
		noun = "file"
	}
	fmt.Fprintf(&b, "cannot read %d %s in %s: ", len(e.Paths), noun, e.Dir)
	for i, p := range e.Paths {
		if i == unreadableShown {
			fmt.Fprintf(&b, " and %d more", len(e.Paths)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteName(shortPath(p)))
	}
	if e.Err != nil {
		fmt.Fprintf(&b, " (%v)", e.Err)
	}
	return b.String()
}

// Unwrap lets errors.Is(err, fs.ErrPermission) match: the kernel's EACCES
// says so.
func (e *unreadableError) Unwrap() error { return e.Err }

// quoteName leaves ordinary names alone and quotes Go-style the ones that
// would garble a message: build directories can hold names with newlines
// or bytes that are not UTF-8.
func quoteName(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// shortPath keeps messages about entries deep down a tree readable.
func shortPath(p string) string {
	const max = 200
	if len(p) <= max {
		return p
	}
	tail := p[len(p)-max:]
	if i := strings.IndexByte(tail, '/'); i >= 0 {
		tail = tail[i+1:]
	}
	return ".../" + tail
}
