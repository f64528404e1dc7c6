/*
 * A tiny x86-64 guest for the capture tests: QEMU loads it with
 * `-kernel` (multiboot v1, 32-bit protected mode, paging off). It builds
 * page tables at known physical addresses, enters long mode, jumps to a
 * Windows-like higher-half alias of itself, loads known values into every
 * general register and the FS/GS/KernelGS bases, writes markers into RAM,
 * then halts with interrupts off so RIP stays put. The test knows every
 * value below and checks that the dump and QEMU's monitor agree with it.
 *
 * vCPU 1 (the application processor) is woken with INIT-SIPI-SIPI into a
 * real-mode trampoline copied to 0x8000, and takes the same road with its
 * own values: CPU n has rax = 0x4841_000n_0000_0000, rbx = ...11, and so on,
 * its own stack and its own "KPCR" page as GS base.
 *
 * Physical layout (all identity-mapped with 2 MiB pages, and mapped again
 * at KBASE = 0xFFFFF80000000000 through PML4 slot 496):
 *   0x00008000  AP trampoline (copied there by the BSP)
 *   0x00100000  this image (multiboot header, code, GDT)
 *   0x00300000  PML4   (CR3)
 *   0x00301000  PDPT   (shared by slot 0 and slot 496)
 *   0x00302000  PD     (512 x 2 MiB = first 1 GiB)
 *   0x00090000 - 0x10000 * n   top of CPU n's stack (RSP = KBASE + that - 0x100)
 *   0x00400000 + 0x1000 * n    CPU n's "KPCR", its GS base (KBASE + that)
 *   0x00500000  MARKER_LOW text
 *   0x03f00000  MARKER_HIGH text (near the top of a 64 MiB guest)
 * Keep these in sync with tests/capture/support.rs (mod expect).
 */
        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, 0x00000003
        .set KBASE_HI, 0xFFFFF800
        .set PML4, 0x300000
        .set PDPT, 0x301000
        .set PD,   0x302000

/* Known register values for CPU \cpu; RSP is set by the caller. */
        .macro SET_CPU cpu
        /* FS, GS and KernelGS bases (after the selector loads, which reset them). */
        movl $0xC0000100, %ecx
        movl $(0x7FFDE000 - 0x10000 * \cpu), %eax
        xorl %edx, %edx
        wrmsr
        movl $0xC0000101, %ecx
        movl $(0x00400000 + 0x1000 * \cpu), %eax
        movl $KBASE_HI, %edx
        wrmsr
        movl $0xC0000102, %ecx
        movl $(0x7FFDF000 - 0x10000 * \cpu), %eax
        movl $0x000007FF, %edx
        wrmsr
        /* The KPCR-like page starts with its own address (as KPCR.Self does). */
        movabsq $(0xFFFFF80000400000 + 0x1000 * \cpu), %rax
        movq %rax, %gs:0

        pushq $0x2
        popfq
        movabsq $(0x4841000000000000 + (\cpu << 32)), %rax
        movabsq $(0x4841000000000011 + (\cpu << 32)), %rbx
        movabsq $(0x4841000000000022 + (\cpu << 32)), %rcx
        movabsq $(0x4841000000000033 + (\cpu << 32)), %rdx
        movabsq $(0x4841000000000044 + (\cpu << 32)), %rsi
        movabsq $(0x4841000000000055 + (\cpu << 32)), %rdi
        leaq 0xF0(%rsp), %rbp
        movabsq $(0x4841000000000088 + (\cpu << 32)), %r8
        movabsq $(0x4841000000000099 + (\cpu << 32)), %r9
        movabsq $(0x48410000000000AA + (\cpu << 32)), %r10
        movabsq $(0x48410000000000BB + (\cpu << 32)), %r11
        movabsq $(0x48410000000000CC + (\cpu << 32)), %r12
        movabsq $(0x48410000000000DD + (\cpu << 32)), %r13
        movabsq $(0x48410000000000EE + (\cpu << 32)), %r14
        movabsq $(0x48410000000000FF + (\cpu << 32)), %r15
        .endm

        .section .text
        .code32
        .globl _start
        .align 4
mb_header:
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

_start:
        cli
        /* Zero the three page-table pages. */
        movl $PML4, %edi
        xorl %eax, %eax
        movl $(3 * 4096 / 4), %ecx
        rep stosl
        /* PML4[0] and PML4[496] -> PDPT; PDPT[0] -> PD. */
        movl $(PDPT | 3), PML4
        movl $(PDPT | 3), PML4 + 496 * 8
        movl $(PD | 3), PDPT
        /* PD[i] = i * 2 MiB | PS | RW | P */
        movl $PD, %edi
        movl $0x83, %eax
        movl $512, %ecx
1:      movl %eax, (%edi)
        movl $0, 4(%edi)
        addl $0x200000, %eax
        addl $8, %edi
        loop 1b

        /* Wake vCPU 1: copy the trampoline to 0x8000, then INIT, SIPI,
         * SIPI through the local APIC (paging is still off, so its MMIO
         * page at 0xFEE00000 is reachable as is). */
        movl $tramp_start, %esi
        movl $0x8000, %edi
        movl $(tramp_end - tramp_start), %ecx
        rep movsb
        movl $0x01000000, 0xFEE00310      /* destination: APIC ID 1 */
        movl $0x00004500, 0xFEE00300      /* INIT, assert */
        call delay
        movl $0x01000000, 0xFEE00310
        movl $0x00004608, 0xFEE00300      /* SIPI, vector 0x08 -> 0x8000 */
        call delay
        movl $0x01000000, 0xFEE00310
        movl $0x00004608, 0xFEE00300
        call delay
        jmp enter_long

delay:
        movl $200000, %ecx
1:      pause
        loop 1b
        ret

        /* vCPU 1 arrives here from the trampoline, in protected mode. */
ap_entry32:
        movw $0x18, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
enter_long:
        lgdt gdt_ptr
        movl %cr4, %eax
        orl $0x20, %eax            /* PAE */
        movl %eax, %cr4
        movl $PML4, %eax
        movl %eax, %cr3
        movl $0xC0000080, %ecx     /* EFER: LME | NXE */
        rdmsr
        orl $0x900, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax      /* PG | PE */
        movl %eax, %cr0
        ljmp $0x10, $long_low

        .code64
long_low:
        /* Continue at the higher-half alias of the next label. */
        movabsq $0xFFFFF80000000000, %rax
        leaq long_high(%rip), %rbx
        addq %rax, %rbx
        jmp *%rbx
long_high:
        movw $0x18, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw %ax, %fs
        movw %ax, %gs
        /* Which CPU am I? The local APIC ID, from CPUID leaf 1 EBX[31:24]. */
        movl $1, %eax
        cpuid
        shrl $24, %ebx
        movl %ebx, %r12d
        testl %r12d, %r12d
        jnz ap_main

        movabsq $0xFFFFF8000008FF00, %rsp
        /* Markers, written through the higher-half alias (BSP only). */
        movabsq $0xFFFFF80000500000, %rdi
        leaq marker_low(%rip), %rsi
        movl $marker_low_len, %ecx
        rep movsb
        movabsq $0xFFFFF80003F00000, %rdi
        leaq marker_high(%rip), %rsi
        movl $marker_high_len, %ecx
        rep movsb
        SET_CPU 0
        .globl halt_loop
halt_loop:
        hlt
        .globl after_hlt
after_hlt:
        jmp halt_loop

ap_main:
        movabsq $0xFFFFF8000007FF00, %rsp
        SET_CPU 1
        .globl ap_halt_loop
ap_halt_loop:
        hlt
        .globl ap_after_hlt
ap_after_hlt:
        jmp ap_halt_loop

        /* The AP's first instructions: real mode at 0x0800:0000. */
        .code16
tramp_start:
        cli
        movw %cs, %ax
        movw %ax, %ds
        lgdtl (tramp_gdt_ptr - tramp_start)
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        ljmpl $0x08, $ap_entry32
        .align 4
tramp_gdt_ptr:
        .word gdt_end - gdt - 1
        .long gdt
tramp_end:

        .section .rodata
marker_low:
        .ascii "HANGSCOPE-CAPTURE-MARKER-LOW:0x00500000"
        .set marker_low_len, . - marker_low
marker_high:
        .ascii "HANGSCOPE-CAPTURE-MARKER-HIGH:0x03f00000"
        .set marker_high_len, . - marker_high
        .align 16
gdt:
        .quad 0                        /* 0x00 null */
        .quad 0x00CF9A000000FFFF       /* 0x08 code32 */
        .quad 0x00209A0000000000       /* 0x10 code64 */
        .quad 0x00CF92000000FFFF       /* 0x18 data */
gdt_end:
gdt_ptr:
        .word gdt_end - gdt - 1
        .long gdt
