package nix

import (
	"time"

	"golang.org/x/sys/unix"
)

// birthAndChange are dir's birth and change times and its mode (statx;
// ok false when the file system has no birth time).
func birthAndChange(dir string) (birth, change time.Time, mode uint32, ok bool) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, 0, unix.STATX_BTIME|unix.STATX_CTIME|unix.STATX_MODE, &st); err != nil {
		return birth, change, 0, false
	}
	if st.Mask&unix.STATX_BTIME == 0 || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return birth, change, 0, false
	}
	birth = time.Unix(st.Btime.Sec, int64(st.Btime.Nsec))
	change = time.Unix(st.Ctime.Sec, int64(st.Ctime.Nsec))
	return birth, change, uint32(st.Mode), true
}
