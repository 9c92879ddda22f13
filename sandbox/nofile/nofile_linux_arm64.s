#include "textflag.h"

// func prlimit(res uintptr, old *Limit) uintptr
TEXT ·prlimit(SB),NOSPLIT,$0-24
	MOVD	$0, R0
	MOVD	res+0(FP), R1
	MOVD	$0, R2
	MOVD	old+8(FP), R3
	MOVD	$261, R8 // SYS_prlimit64
	SVC
	CMN	$4095, R0
	BCC	ok
	NEG	R0, R0
	MOVD	R0, ret+16(FP)
	RET
ok:
	MOVD	$0, ret+16(FP)
	RET
