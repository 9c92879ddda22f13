package nix

import (
	"time"

	"golang.org/x/sys/unix"
)

// birthAndChange are dir's birth and change times and its mode.
func birthAndChange(dir string) (birth, change time.Time, mode uint32, ok bool) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return birth, change, 0, false
	}
	return time.Unix(st.Btim.Unix()), time.Unix(st.Ctim.Unix()), uint32(st.Mode), true
}
