//go:build linux

package sandbox

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// runBPF interprets the classic-BPF subset our filter uses over one
// struct seccomp_data, and returns the filter's verdict.
func runBPF(t *testing.T, prog []unix.SockFilter, nr, arch uint32, args [6]uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[0:], nr)
	binary.LittleEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case bpfLdAbs:
			if int(in.K)+4 > len(data) {
				t.Fatalf("pc %d: load out of range", pc)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case bpfJeq:
			if acc == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfJset:
			if acc&in.K != 0 {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfJa:
			pc += int(in.K)
		case bpfRet:
			return in.K
		default:
			t.Fatalf("pc %d: unexpected instruction %#x", pc, in.Code)
		}
	}
	t.Fatal("program ran off its end")
	return 0
}

func TestSeccompProgram(t *testing.T) {
	eperm := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
	enotsup := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOTSUP))
	allow := uint32(unix.SECCOMP_RET_ALLOW)
	kill := uint32(unix.SECCOMP_RET_KILL_THREAD)

	type call struct {
		name string
		nr   uint32
		arch uint32
		args [6]uint64
		want uint32
	}
	nix28 := SeccompProfile{}
	nix234 := SeccompProfile{Fchmodat2: true, GetXattr: true}
	cases := []struct {
		goarch  string
		profile SeccompProfile
		calls   []call
	}{
		{"amd64", nix28, []call{
			{"chmod 04755", 90, auditArchX8664, [6]uint64{0, 0o4755}, eperm},
			{"chmod 02755", 90, auditArchX8664, [6]uint64{0, 0o2755}, eperm},
			{"chmod 0755", 90, auditArchX8664, [6]uint64{0, 0o755}, allow},
			{"chmod 01777", 90, auditArchX8664, [6]uint64{0, 0o1777}, allow},
			{"fchmod 06755", 91, auditArchX8664, [6]uint64{3, 0o6755}, eperm},
			{"fchmodat 04755", 268, auditArchX8664, [6]uint64{0, 0, 0o4755}, eperm},
			{"fchmodat 0755 in arg1 only", 268, auditArchX8664, [6]uint64{0, 0o4755, 0o755}, allow},
			{"fchmodat2 (not in 2.8)", 452, auditArchX8664, [6]uint64{0, 0, 0o4755}, allow},
			{"setxattr", 188, auditArchX8664, [6]uint64{}, enotsup},
			{"fsetxattr", 190, auditArchX8664, [6]uint64{}, enotsup},
			{"getxattr (not in 2.8)", 191, auditArchX8664, [6]uint64{}, allow},
			// setxattrat (Linux 6.13) sets what setxattr sets; Nix's
			// filter predates it, nbs fails it like its siblings.
			{"setxattrat", 463, auditArchX8664, [6]uint64{}, enotsup},
			{"getxattrat (not in 2.8)", 464, auditArchX8664, [6]uint64{}, allow},
			{"listxattrat", 465, auditArchX8664, [6]uint64{}, allow},
			{"removexattrat (removexattr is allowed too)", 466, auditArchX8664, [6]uint64{}, allow},
			{"file_setattr (inode flags, not an xattr)", 469, auditArchX8664, [6]uint64{}, allow},
			{"x32 setxattrat", 463 | x32SyscallBit, auditArchX8664, [6]uint64{}, enotsup},
			{"i386 setxattrat", 463, auditArchI386, [6]uint64{}, enotsup},
			{"i386 removexattrat", 466, auditArchI386, [6]uint64{}, allow},
			{"x32 chmod 04755", 90 | x32SyscallBit, auditArchX8664, [6]uint64{0, 0o4755}, eperm},
			{"x32 lsetxattr", 189 | x32SyscallBit, auditArchX8664, [6]uint64{}, enotsup},
			{"i386 chmod 04755", 15, auditArchI386, [6]uint64{0, 0o4755}, eperm},
			{"i386 fchmodat 02755", 306, auditArchI386, [6]uint64{0, 0, 0o2755}, eperm},
			{"i386 setxattr", 226, auditArchI386, [6]uint64{}, enotsup},
			{"i386 read", 3, auditArchI386, [6]uint64{}, allow},
			{"read", 0, auditArchX8664, [6]uint64{}, allow},
			{"other arch", 90, auditArchAarch64, [6]uint64{}, kill},
		}},
		{"amd64", nix234, []call{
			{"fchmodat2 04755", 452, auditArchX8664, [6]uint64{0, 0, 0o4755}, eperm},
			{"getxattr", 191, auditArchX8664, [6]uint64{}, enotsup},
			{"fgetxattr", 193, auditArchX8664, [6]uint64{}, enotsup},
			{"listxattr (2.35+)", 194, auditArchX8664, [6]uint64{}, allow},
			{"setxattrat", 463, auditArchX8664, [6]uint64{}, enotsup},
			{"getxattrat", 464, auditArchX8664, [6]uint64{}, enotsup},
			{"x32 getxattrat", 464 | x32SyscallBit, auditArchX8664, [6]uint64{}, enotsup},
			{"i386 getxattrat", 464, auditArchI386, [6]uint64{}, enotsup},
			{"listxattrat (2.35+)", 465, auditArchX8664, [6]uint64{}, allow},
			{"removexattrat", 466, auditArchX8664, [6]uint64{}, allow},
		}},
		{"amd64", SeccompProfile{Fchmodat2: true, GetXattr: true, ListXattr: true}, []call{
			{"listxattr", 194, auditArchX8664, [6]uint64{}, enotsup},
			{"flistxattr", 196, auditArchX8664, [6]uint64{}, enotsup},
			{"listxattrat", 465, auditArchX8664, [6]uint64{}, enotsup},
			{"i386 listxattrat", 465, auditArchI386, [6]uint64{}, enotsup},
			{"removexattr", 197, auditArchX8664, [6]uint64{}, allow},
			{"removexattrat", 466, auditArchX8664, [6]uint64{}, allow},
		}},
		{"arm64", nix234, []call{
			{"fchmod 04755", 52, auditArchAarch64, [6]uint64{3, 0o4755}, eperm},
			{"fchmodat 02755", 53, auditArchAarch64, [6]uint64{0, 0, 0o2755}, eperm},
			{"setxattr", 5, auditArchAarch64, [6]uint64{}, enotsup},
			{"getxattr", 8, auditArchAarch64, [6]uint64{}, enotsup},
			{"setxattrat", 463, auditArchAarch64, [6]uint64{}, enotsup},
			{"getxattrat", 464, auditArchAarch64, [6]uint64{}, enotsup},
			{"removexattrat", 466, auditArchAarch64, [6]uint64{}, allow},
			{"arm setxattrat", 463, auditArchARM, [6]uint64{}, enotsup},
			{"arm fsetxattr", 228, auditArchARM, [6]uint64{}, enotsup},
			{"arm chmod 04755", 15, auditArchARM, [6]uint64{0, 0o4755}, eperm},
			{"arm fchmodat 04755", 333, auditArchARM, [6]uint64{0, 0, 0o4755}, eperm},
			{"x86", 15, auditArchI386, [6]uint64{}, kill},
		}},
	}
	for _, c := range cases {
		arches, err := seccompArches(c.goarch)
		if err != nil {
			t.Fatal(err)
		}
		prog, err := seccompProgram(arches, c.profile)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range c.calls {
			if got := runBPF(t, prog, k.nr, k.arch, k.args); got != k.want {
				t.Errorf("%s %+v: %s: verdict %#x, want %#x", c.goarch, c.profile, k.name, got, k.want)
			}
		}
	}
	if _, err := seccompArches("riscv64"); err == nil {
		t.Error("seccompArches(riscv64) succeeded; nbs has no syscall table for it")
	}
}
