package sandbox

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountError is a failed mount(2) with everything needed to see why.
type mountError struct {
	source, target, fstype, data string
	flags                        uintptr
	err                          error
}

func (e *mountError) Error() string { return e.describe() + ": " + e.err.Error() }

// describe is the mount without its error.
func (e *mountError) describe() string {
	s := "mount"
	if e.fstype != "" {
		s += " " + e.fstype
	}
	if e.source != "" && e.source != e.fstype {
		s += " " + e.source
	}
	s += " on " + e.target
	var opts []string
	if f := mountFlags(e.flags); f != "" {
		opts = append(opts, f)
	}
	if e.data != "" {
		opts = append(opts, e.data)
	}
	if len(opts) > 0 {
		s += " (" + strings.Join(opts, ", ") + ")"
	}
	return s
}

func (e *mountError) Unwrap() error { return e.err }

var mountFlagNames = []struct {
	flag uintptr
	name string
}{
	{unix.MS_RDONLY, "MS_RDONLY"}, {unix.MS_NOSUID, "MS_NOSUID"}, {unix.MS_NODEV, "MS_NODEV"},
	{unix.MS_NOEXEC, "MS_NOEXEC"}, {unix.MS_REMOUNT, "MS_REMOUNT"}, {unix.MS_BIND, "MS_BIND"},
	{unix.MS_REC, "MS_REC"}, {unix.MS_PRIVATE, "MS_PRIVATE"}, {unix.MS_SLAVE, "MS_SLAVE"},
	{unix.MS_SHARED, "MS_SHARED"}, {unix.MS_NOATIME, "MS_NOATIME"}, {unix.MS_RELATIME, "MS_RELATIME"},
}

// mountFlags prints flags the way runc does: MS_BIND|MS_REC.
func mountFlags(flags uintptr) string {
	var names []string
	for _, f := range mountFlagNames {
		if flags&f.flag != 0 {
			names = append(names, f.name)
			flags &^= f.flag
		}
	}
	if flags != 0 {
		names = append(names, fmt.Sprintf("%#x", flags))
	}
	return strings.Join(names, "|")
}

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &mountError{source: source, target: target, fstype: fstype, data: data, flags: flags, err: err}
	}
	return nil
}
