/*
 * Entry from QEMU's PVH boot protocol.
 *
 * QEMU finds XEN_ELFNOTE_PHYS32_ENTRY (type 18) in our ELF notes and jumps to
 * `pvh_start` in 32-bit protected mode, paging off, interrupts off, with
 * %ebx = physical address of the `hvm_start_info` (command line, memory map,
 * ACPI RSDP). We build just enough page tables to reach the higher half,
 * switch to long mode, and call `kernel_main(start_info)` on a real stack.
 */

    .section .note.pvh, "a", @note
    .balign 4
    .long 4                     /* name size ("Xen\0") */
    .long 4                     /* descriptor size */
    .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_start
    .balign 4

/* Boot page tables: low, linked where they are loaded, zeroed by the loader. */
    .section .boot.bss, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:      .skip 4096
boot_pdpt_low:  .skip 4096
boot_pdpt_high: .skip 4096
boot_pd:        .skip 4096 * 4          /* 4 GiB in 2 MiB pages */

    .section .boot.rodata, "a"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF            /* 0x08: 64-bit kernel code */
    .quad 0x00CF92000000FFFF            /* 0x10: kernel data */
boot_gdtr:
    .word boot_gdtr - boot_gdt - 1
    .long boot_gdt

    .section .boot.text, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    cld
    mov %ebx, %esi                      /* keep start_info across the switch */

    /* 2048 x 2 MiB = identity map of the first 4 GiB. */
    mov $boot_pd, %edi
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                      /* present | writable | 2 MiB page */
    mov %eax, (%edi,%ecx,8)
    mov %ecx, %edx
    shr $11, %edx                       /* bits 32.. of (ecx << 21) */
    mov %edx, 4(%edi,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 1b

    mov $boot_pdpt_low, %edi
    mov $boot_pd + 0x3, %eax
    mov %eax, 0(%edi)
    add $4096, %eax
    mov %eax, 8(%edi)
    add $4096, %eax
    mov %eax, 16(%edi)
    add $4096, %eax
    mov %eax, 24(%edi)

    /* PDPT entry 510 of PML4 slot 511 is -2 GiB: the first GiB again. */
    mov $boot_pdpt_high, %edi
    mov $boot_pd + 0x3, %eax
    mov %eax, 510*8(%edi)

    /* PML4: 0 = identity (for this code), 256 = the start of the direct map
       (the same 4 GiB, so the kernel can reach the boot info and ACPI tables
       before it builds its own tables), 511 = kernel image. */
    mov $boot_pml4, %edi
    mov $boot_pdpt_low + 0x3, %eax
    mov %eax, 0(%edi)
    mov %eax, 256*8(%edi)
    mov $boot_pdpt_high + 0x3, %eax
    mov %eax, 511*8(%edi)

    mov %cr4, %eax
    or $((1 << 5) | (1 << 7)), %eax     /* PAE | PGE */
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx               /* EFER */
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax    /* LME | NXE */
    wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | 1), %eax   /* PG | WP | PE */
    mov %eax, %cr0

    lgdt boot_gdtr
    ljmp $0x08, $boot_long_mode

    .code64
boot_long_mode:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $boot_stack_top, %rsp
    xor %ebp, %ebp                      /* ends every backtrace */
    mov %esi, %edi                      /* kernel_main(start_info_phys) */
    movabs $kernel_main, %rax
    call *%rax
2:  hlt
    jmp 2b

    .section .bss
    .balign 16
boot_stack:
    .skip 65536
boot_stack_top:
