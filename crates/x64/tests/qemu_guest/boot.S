# A minimal multiboot guest for hangscope's QEMU test: enters long mode
# with Windows-like page tables, sets GS base and kernel GS base, loads
# marker values in rbx and r15, writes 'R' to COM1 and halts.
#
# Physical layout (linked at 1 MiB): page tables from pml4 on, then two
# marker pages. Virtual layout:
#   0..1 GiB                    identity, 2 MiB pages
#   PML4[0x1ED]                 self-reference (Windows 7's index)
#   fffff800`00000000           4 KiB page -> mark_page ("HANGSCOPE-MARK")
#   fffff800`00001000           transition PTE -> mark_page2
#   fffff800`00002000           page-file PTE 0x1234_00000080
#   fffff800`00200000           2 MiB page -> 0x400000 ("BIG!")
.intel_syntax noprefix
.set MB_MAGIC, 0x1BADB002
.set MB_FLAGS, 0
.section .multiboot, "a"
.align 4
.long MB_MAGIC
.long MB_FLAGS
.long -(MB_MAGIC + MB_FLAGS)

.section .text, "ax"
.code32
.global _start
_start:
    cli
    mov edi, offset pml4
    mov ecx, 6 * 1024
    xor eax, eax
    rep stosd
    mov eax, offset pdpt_low
    or eax, 3
    mov [pml4], eax
    mov eax, offset pml4
    or eax, 0x63
    mov [pml4 + 0x1ED * 8], eax
    mov eax, offset pdpt_high
    or eax, 3
    mov [pml4 + 0x1F0 * 8], eax
    mov eax, offset pd_low
    or eax, 3
    mov [pdpt_low], eax
    xor ecx, ecx
1:  mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [pd_low + ecx * 8], eax
    inc ecx
    cmp ecx, 512
    jne 1b
    mov eax, offset pd_high
    or eax, 3
    mov [pdpt_high], eax
    mov eax, offset pt_high
    or eax, 3
    mov [pd_high], eax
    mov dword ptr [pd_high + 8], 0x400083
    mov eax, offset mark_page
    or eax, 3
    mov [pt_high], eax
    mov eax, offset mark_page2
    or eax, 0x800
    mov [pt_high + 8], eax
    mov dword ptr [pt_high + 16], 0x80
    mov dword ptr [pt_high + 20], 0x1234
    mov dword ptr [0x400000], 0x21474942
    mov eax, offset pml4
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000001
    mov cr0, eax
    lgdt [gdt_ptr]
    .byte 0xEA
    .long long_mode
    .word 0x08

.code64
long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov ecx, 0xC0000101
    movabs rax, 0xFFFFF80000000000
    mov rdx, rax
    shr rdx, 32
    wrmsr
    mov ecx, 0xC0000102
    mov eax, 0x12345000
    xor edx, edx
    wrmsr
    mov esp, offset stack_top
    movabs rbx, 0x1111222233334444
    movabs r15, 0x5555666677778888
    mov dx, 0x3F8
    mov al, 'R'
    out dx, al
2:  hlt
    jmp 2b

.section .data, "aw"
.align 8
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
gdt_ptr:
    .word 23
    .long gdt
.align 4096
pml4:      .space 4096
pdpt_low:  .space 4096
pd_low:    .space 4096
pdpt_high: .space 4096
pd_high:   .space 4096
pt_high:   .space 4096
mark_page:
    .ascii "HANGSCOPE-MARK"
    .space 4096 - 14
mark_page2:
    .ascii "TRANSITION-PAGE"
    .space 4096 - 15
stack:
    .space 4096
stack_top:
