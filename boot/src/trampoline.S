/*
 * Application-processor trampoline.
 *
 * A started AP begins in 16-bit real mode at (SIPI vector << 12). The kernel
 * copies this section to AP_TRAMPOLINE_PHYS (0x8000) and fills the data words
 * at its end (page table, stack, entry point, argument) before each SIPI. All
 * addresses below are therefore 0x8000 + (label - ap_trampoline).
 */
    .set TRAMP, 0x8000

    .section .trampoline, "ax"
    .code16
    .global ap_trampoline
ap_trampoline:
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl TRAMP + (tramp_gdtr - ap_trampoline)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x18, $(TRAMP + (tramp32 - ap_trampoline))

    .code32
tramp32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $((1 << 5) | (1 << 7)), %eax     /* PAE | PGE */
    mov %eax, %cr4
    mov TRAMP + (ap_tramp_cr3 - ap_trampoline), %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax    /* LME | NXE */
    wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16)), %eax   /* PG | WP */
    mov %eax, %cr0
    ljmpl $0x08, $(TRAMP + (tramp64 - ap_trampoline))

    .code64
tramp64:
    mov TRAMP + (ap_tramp_stack - ap_trampoline), %rsp
    mov TRAMP + (ap_tramp_arg - ap_trampoline), %rdi
    mov TRAMP + (ap_tramp_entry - ap_trampoline), %rax
    xor %ebp, %ebp
    call *%rax
1:  hlt
    jmp 1b

    .balign 8
tramp_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF            /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF            /* 0x10: data */
    .quad 0x00CF9A000000FFFF            /* 0x18: 32-bit code */
tramp_gdtr:
    .word 4 * 8 - 1
    .long TRAMP + (tramp_gdt - ap_trampoline)

    .balign 8
    .global ap_tramp_cr3, ap_tramp_stack, ap_tramp_entry, ap_tramp_arg
ap_tramp_cr3:   .quad 0
ap_tramp_stack: .quad 0
ap_tramp_entry: .quad 0
ap_tramp_arg:   .quad 0
