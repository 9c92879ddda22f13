package sandbox

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Nix's setupSeccomp (filter-syscalls, default true) installs a libseccomp
// filter whose default action is ALLOW and which
//   - fails chmod/fchmod/fchmodat (and fchmodat2 from 2.22) with EPERM
//     when the new mode has S_ISUID or S_ISGID, so builds cannot make
//     set-id files;
//   - fails the extended-attribute calls with ENOTSUP, so builds cannot
//     set ACLs or capabilities on outputs (get* from 2.24, list* 2.35).
// It adds the compat architectures of the host (x86 and x32 on x86_64,
// arm on aarch64); other architectures are killed. We build the same
// BPF program by hand instead of linking libseccomp.
//
// Nix lists the calls by name and its list predates setxattrat (Linux
// 6.13), which sets the same attributes by another number and so passes
// Nix's filter. nbs fails the *xattrat calls like their siblings:
// setxattrat always, getxattrat with get*, listxattrat with list*.
// removexattrat stays allowed, as removexattr is in Nix: removing an
// attribute grants nothing.
//
// Checked against the syscall tables of Linux 6.18 (the last call is
// 470, listns): no other call sets a mode or an extended attribute.
// open_tree_attr (467) changes mount attributes and file_setattr (469)
// the inode flags of FS_IOC_FSSETXATTR (immutable, project id, ...),
// which Nix allows through that ioctl too.

// seccompRule fails syscall nr with errno; with arg >= 0 only when that
// argument has S_ISUID or S_ISGID set.
type seccompRule struct {
	nr    uint32
	arg   int
	errno unix.Errno
}

// seccompArch is one audit architecture and its syscall numbers.
type seccompArch struct {
	audit uint32
	// chmod is 0 where the architecture has no chmod syscall (aarch64).
	chmod, fchmod, fchmodat, fchmodat2 uint32
	// setxattr is the first of setxattr, lsetxattr, fsetxattr, getxattr,
	// lgetxattr, fgetxattr, listxattr, llistxattr, flistxattr, which
	// every architecture numbers consecutively.
	setxattr uint32
	// setxattrat is the first of setxattrat, getxattrat, listxattrat
	// (and removexattrat, allowed), consecutive too.
	setxattrat uint32
	// nrBit is or-ed into every number (x32's __X32_SYSCALL_BIT).
	nrBit uint32
}

const (
	auditArchX8664   = 0xc000003e
	auditArchI386    = 0x40000003
	auditArchAarch64 = 0xc00000b7
	auditArchARM     = 0x40000028
	x32SyscallBit    = 0x40000000
	// Since Linux 5.1 (424) a new call has the same number on every
	// architecture.
	nrFchmodat2  = 452
	nrSetxattrat = 463
)

var (
	archX8664   = seccompArch{audit: auditArchX8664, chmod: 90, fchmod: 91, fchmodat: 268, fchmodat2: nrFchmodat2, setxattr: 188, setxattrat: nrSetxattrat}
	archX32     = seccompArch{audit: auditArchX8664, chmod: 90, fchmod: 91, fchmodat: 268, fchmodat2: nrFchmodat2, setxattr: 188, setxattrat: nrSetxattrat, nrBit: x32SyscallBit}
	archI386    = seccompArch{audit: auditArchI386, chmod: 15, fchmod: 94, fchmodat: 306, fchmodat2: nrFchmodat2, setxattr: 226, setxattrat: nrSetxattrat}
	archAarch64 = seccompArch{audit: auditArchAarch64, fchmod: 52, fchmodat: 53, fchmodat2: nrFchmodat2, setxattr: 5, setxattrat: nrSetxattrat}
	archARM     = seccompArch{audit: auditArchARM, chmod: 15, fchmod: 94, fchmodat: 333, fchmodat2: nrFchmodat2, setxattr: 226, setxattrat: nrSetxattrat}
)

// seccompArches returns the architectures Nix's filter covers on goarch,
// native first.
func seccompArches(goarch string) ([]seccompArch, error) {
	switch goarch {
	case "amd64":
		return []seccompArch{archX8664, archX32, archI386}, nil
	case "arm64":
		return []seccompArch{archAarch64, archARM}, nil
	}
	return nil, fmt.Errorf("no seccomp filter for %s: nbs knows the syscall numbers of amd64 and arm64 (set filter-syscalls = false in nix.conf to run without one)", goarch)
}

func (a seccompArch) rules(p SeccompProfile) []seccompRule {
	var r []seccompRule
	mode := func(nr uint32, arg int) {
		if nr != 0 {
			r = append(r, seccompRule{nr | a.nrBit, arg, unix.EPERM})
		}
	}
	mode(a.chmod, 1)
	mode(a.fchmod, 1)
	mode(a.fchmodat, 2)
	if p.Fchmodat2 {
		mode(a.fchmodat2, 2)
	}
	xattr := func(nrs ...uint32) {
		for _, nr := range nrs {
			r = append(r, seccompRule{nr | a.nrBit, -1, unix.ENOTSUP})
		}
	}
	xattr(a.setxattr, a.setxattr+1, a.setxattr+2, a.setxattrat)
	if p.GetXattr {
		xattr(a.setxattr+3, a.setxattr+4, a.setxattr+5, a.setxattrat+1)
	}
	if p.ListXattr {
		xattr(a.setxattr+6, a.setxattr+7, a.setxattr+8, a.setxattrat+2)
	}
	return r
}

// Offsets in struct seccomp_data.
const (
	seccompNr      = 0
	seccompArchOff = 4
	seccompArgs    = 16 // args[i] at 16+8*i; the low word comes first on little-endian
)

func bpfStmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
func bpfJump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

const (
	bpfLdAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfJa    = unix.BPF_JMP | unix.BPF_JA
	bpfRet   = unix.BPF_RET | unix.BPF_K
)

// seccompProgram assembles the filter for the given architectures.
// Layout: an architecture dispatch, then one block per audit
// architecture, each a run of self-contained rule blocks ending in
// ALLOW.
func seccompProgram(arches []seccompArch, p SeccompProfile) ([]unix.SockFilter, error) {
	// Group the rules by audit architecture (x86_64 and x32 share one).
	var audits []uint32
	rules := map[uint32][]seccompRule{}
	for _, a := range arches {
		if _, ok := rules[a.audit]; !ok {
			audits = append(audits, a.audit)
		}
		rules[a.audit] = append(rules[a.audit], a.rules(p)...)
	}
	blocks := make([][]unix.SockFilter, len(audits))
	for i, au := range audits {
		var b []unix.SockFilter
		for _, r := range rules[au] {
			ret := bpfStmt(bpfRet, unix.SECCOMP_RET_ERRNO|uint32(r.errno))
			if r.arg < 0 {
				b = append(b,
					bpfStmt(bpfLdAbs, seccompNr),
					bpfJump(bpfJeq, r.nr, 0, 1),
					ret)
				continue
			}
			b = append(b,
				bpfStmt(bpfLdAbs, seccompNr),
				bpfJump(bpfJeq, r.nr, 0, 4),
				bpfStmt(bpfLdAbs, uint32(seccompArgs+8*r.arg)),
				bpfJump(bpfJset, unix.S_ISUID|unix.S_ISGID, 0, 1),
				ret,
				bpfStmt(bpfRet, unix.SECCOMP_RET_ALLOW))
		}
		blocks[i] = append(b, bpfStmt(bpfRet, unix.SECCOMP_RET_ALLOW))
	}
	// Dispatch: "jeq audit → ja block" pairs, then kill unknown
	// architectures (libseccomp's default bad-arch action).
	prog := []unix.SockFilter{bpfStmt(bpfLdAbs, seccompArchOff)}
	dispatchLen := 1 + 2*len(audits) + 1
	offset := dispatchLen
	for i, au := range audits {
		here := len(prog)
		// The "ja" sits right after this jeq; it jumps to the block.
		prog = append(prog,
			bpfJump(bpfJeq, au, 0, 1),
			bpfStmt(bpfJa, uint32(offset-(here+2))))
		offset += len(blocks[i])
	}
	prog = append(prog, bpfStmt(bpfRet, unix.SECCOMP_RET_KILL_THREAD))
	for _, b := range blocks {
		prog = append(prog, b...)
	}
	if len(prog) > 4096 {
		return nil, fmt.Errorf("seccomp program too long (%d instructions)", len(prog))
	}
	return prog, nil
}

// seccompFilter is Nix's filter for this machine's architectures.
func seccompFilter(p SeccompProfile) ([]unix.SockFilter, error) {
	arches, err := seccompArches(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	return seccompProgram(arches, p)
}
