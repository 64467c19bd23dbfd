//go:build linux

#include "textflag.h"

// func Int80(nr, a1, a2, a3 uintptr) (r uintptr)
//
// The ia32 convention takes the number in EAX and the arguments in EBX, ECX
// and EDX (arch/x86/entry/entry_64_compat.S). ABI0 has no callee-saved
// general registers, so clobbering BX is fine.
TEXT ·Int80(SB), NOSPLIT, $0-40
	MOVQ	nr+0(FP), AX
	MOVQ	a1+8(FP), BX
	MOVQ	a2+16(FP), CX
	MOVQ	a3+24(FP), DX
	INT	$0x80
	MOVLQSX	AX, AX
	MOVQ	AX, r+32(FP)
	RET
