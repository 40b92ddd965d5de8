"""Facts about the target architecture that generated code depends on."""

from __future__ import annotations

from common.record import record


@record(frozen=True, slots=True)
class Arch:
    name: str  # as `uname -m` prints it
    arg_offsets: tuple[int, ...]  # offsets in struct pt_regs of the first six call arguments
    return_offset: int  # offset in struct pt_regs of the return value register


# struct pt_regs on x86_64 (arch/x86/include/asm/ptrace.h): r15 r14 r13 r12 bp bx r11 r10 r9 r8
# ax cx dx si di ..., 8 bytes each; the call arguments are di si dx cx r8 r9, the return value ax.
X86_64 = Arch("x86_64", arg_offsets=(112, 104, 96, 88, 72, 64), return_offset=80)
