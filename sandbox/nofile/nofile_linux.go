//go:build linux && (amd64 || arm64)

package nofile

// rlimitNofile is RLIMIT_NOFILE on amd64 and arm64.
const rlimitNofile = 7

// prlimit is prlimit64(0, res, NULL, old), without package syscall: the
// errno, or 0.
//
//go:noescape
func prlimit(res uintptr, old *Limit) uintptr

func init() {
	known = prlimit(rlimitNofile, &start) == 0
}
