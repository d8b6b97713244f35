/* Assemble: as --32 -o probe.o probe.S && objcopy -O binary -j .text probe.o probe.bin (accel.ts embeds the bytes). */
/* Boot-sector probe: real mode (a BIOS call) -> protected mode (an interrupt round trip through iret)
   -> long mode with paging -> cpuid -> exit through isa-debug-exit (port 0xf4) with status 0x31. */
        .code16
        .org 0
start:
        cli
        xorw %ax, %ax
        movw %ax, %ds
        movw %ax, %ss
        movw $0x7c00, %sp
        int $0x12                       /* BIOS: conventional memory size */
        lgdt gdt_desc - start + 0x7c00
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        ljmp $0x08, $(pm32 - start + 0x7c00)
        .code32
pm32:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl $0x7c00, %esp
        /* one interrupt gate, vector 0x30, in an IDT at 0x5000 */
        movl $(handler - start + 0x7c00), %eax
        movw %ax, 0x5000 + 0x30 * 8
        movw $0x08, 0x5000 + 0x30 * 8 + 2
        movw $0x8e00, 0x5000 + 0x30 * 8 + 4
        shrl $16, %eax
        movw %ax, 0x5000 + 0x30 * 8 + 6
        lidt idt_desc - start + 0x7c00
        int $0x30
        /* identity-map the first 2 MiB: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 (one 2 MiB page) */
        movl $0x1000, %edi
        xorl %eax, %eax
        movl $(0x3000 / 4), %ecx
        rep stosl
        movl $0x2003, 0x1000
        movl $0x3003, 0x2000
        movl $0x83, 0x3000
        movl $0x1000, %eax
        movl %eax, %cr3
        movl %cr4, %eax
        orl $0x20, %eax                 /* PAE */
        movl %eax, %cr4
        movl $0xc0000080, %ecx          /* EFER.LME */
        rdmsr
        orl $0x100, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000000, %eax           /* paging on: long mode active */
        movl %eax, %cr0
        ljmp $0x18, $(lm64 - start + 0x7c00)
handler:
        iret
        .code64
lm64:
        xorl %eax, %eax
        cpuid
        movb $0x31, %al
        outb %al, $0xf4
1:      hlt
        jmp 1b
        .p2align 3
gdt:
        .quad 0
        .quad 0x00cf9a000000ffff        /* 0x08: 32-bit code */
        .quad 0x00cf92000000ffff        /* 0x10: data */
        .quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
gdt_desc:
        .word gdt_desc - gdt - 1
        .long gdt - start + 0x7c00
idt_desc:
        .word 0x30 * 8 + 7
        .long 0x5000
        .org 510
        .byte 0x55, 0xaa
