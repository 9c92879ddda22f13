#include "textflag.h"

// func prlimit(res uintptr, old *Limit) uintptr
TEXT ·prlimit(SB),NOSPLIT,$0-24
	MOVQ	$302, AX // SYS_prlimit64
	MOVQ	$0, DI
	MOVQ	res+0(FP), SI
	MOVQ	$0, DX
	MOVQ	old+8(FP), R10
	SYSCALL
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	NEGQ	AX
	MOVQ	AX, ret+16(FP)
	RET
ok:
	MOVQ	$0, ret+16(FP)
	RET
