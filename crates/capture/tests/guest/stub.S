/*
 * A tiny x86-64 guest for the capture tests: QEMU loads it with
 * `-kernel` (multiboot v1, 32-bit protected mode, paging off). It builds
 * page tables at known physical addresses, enters long mode, jumps to a
 * Windows-like higher-half alias of itself, loads known values into every
 * general register and the FS/GS/KernelGS bases, writes markers into RAM,
 * then halts with interrupts off so RIP stays put. The test knows every
 * value below and checks that the dump and QEMU's monitor agree with it.
 *
 * Physical layout (all identity-mapped with 2 MiB pages, and mapped again
 * at KBASE = 0xFFFFF80000000000 through PML4 slot 496):
 *   0x00100000  this image (multiboot header, code, GDT)
 *   0x00300000  PML4   (CR3)
 *   0x00301000  PDPT   (shared by slot 0 and slot 496)
 *   0x00302000  PD     (512 x 2 MiB = first 1 GiB)
 *   0x00090000  top of the stack (RSP = KBASE + 0x8ff00)
 *   0x00400000  the "KPCR" GS base points at (KBASE + 0x400000)
 *   0x00500000  MARKER_LOW text
 *   0x03f00000  MARKER_HIGH text (near the top of a 64 MiB guest)
 * Keep these in sync with tests/guest.rs.
 */
        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, 0x00000003
        .set KBASE_HI, 0xFFFFF800
        .set PML4, 0x300000
        .set PDPT, 0x301000
        .set PD,   0x302000

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
        movabsq $0xFFFFF8000008FF00, %rsp

        /* FS, GS and KernelGS bases (after the selector loads, which reset them). */
        movl $0xC0000100, %ecx
        movl $0x7FFDE000, %eax
        xorl %edx, %edx
        wrmsr
        movl $0xC0000101, %ecx
        movl $0x00400000, %eax
        movl $KBASE_HI, %edx
        wrmsr
        movl $0xC0000102, %ecx
        movl $0x7FFDF000, %eax
        movl $0x000007FF, %edx
        wrmsr

        /* Markers, written through the higher-half alias. */
        movabsq $0xFFFFF80000500000, %rdi
        leaq marker_low(%rip), %rsi
        movl $marker_low_len, %ecx
        rep movsb
        movabsq $0xFFFFF80003F00000, %rdi
        leaq marker_high(%rip), %rsi
        movl $marker_high_len, %ecx
        rep movsb
        /* The KPCR-like page starts with its own address (as KPCR.Self does). */
        movabsq $0xFFFFF80000400000, %rax
        movq %rax, %gs:0

        pushq $0x2
        popfq
        movabsq $0x4841000000000000, %rax
        movabsq $0x4841000000000011, %rbx
        movabsq $0x4841000000000022, %rcx
        movabsq $0x4841000000000033, %rdx
        movabsq $0x4841000000000044, %rsi
        movabsq $0x4841000000000055, %rdi
        movabsq $0xFFFFF8000008FFF0, %rbp
        movabsq $0x4841000000000088, %r8
        movabsq $0x4841000000000099, %r9
        movabsq $0x48410000000000AA, %r10
        movabsq $0x48410000000000BB, %r11
        movabsq $0x48410000000000CC, %r12
        movabsq $0x48410000000000DD, %r13
        movabsq $0x48410000000000EE, %r14
        movabsq $0x48410000000000FF, %r15
        .globl halt_loop
halt_loop:
        hlt
        .globl after_hlt
after_hlt:
        jmp halt_loop

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
