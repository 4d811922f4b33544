//! Links the kernel with boot/linker.ld and generates the 256 interrupt entry
//! stubs (one per vector, so even an unexpected vector is reported by number).
use std::fmt::Write;

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ld = root.join("boot/linker.ld");
    println!("cargo:rerun-if-changed={}", ld.display());
    println!("cargo:rustc-link-arg-bins=-T{}", ld.display());
    println!("cargo:rustc-link-arg-bins=--no-pie");

    // Vectors whose exception pushes an error code: #DF, #TS, #NP, #SS, #GP,
    // #PF, #AC, #CP, #VC, #SX. For the others the stub pushes a zero so every
    // trap frame has the same layout.
    let has_error_code = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];
    let mut s = String::from(".section .text\n");
    for v in 0..256 {
        writeln!(s, ".balign 16\nisr_stub_{v}:").unwrap();
        if !has_error_code.contains(&v) {
            writeln!(s, "    push $0").unwrap();
        }
        writeln!(s, "    push ${v}\n    jmp isr_common").unwrap();
    }
    s.push_str(".section .rodata\n.balign 8\n.global isr_stub_table\nisr_stub_table:\n");
    for v in 0..256 {
        writeln!(s, "    .quad isr_stub_{v}").unwrap();
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("isr_stubs.S");
    std::fs::write(out, s).unwrap();
}
