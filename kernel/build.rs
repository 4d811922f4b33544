//! Links the kernel with boot/linker.ld and generates the 256 interrupt entry
//! stubs (one per vector, so even an unexpected vector is reported by number).
use std::fmt::Write;

include!("build_user_inputs.rs");

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    build_user_programs(&root);
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

/// Builds the user programs (the separate cargo workspace `user/`, for its own
/// target) and writes `$OUT_DIR/user_programs.rs`:
/// `pub static PROGRAMS: &[(&str, &[u8])] = &[("hello", include_bytes!(..)), ..];`
/// with one entry per `user/src/bin/NAME.rs` (or `NAME/main.rs`), sorted by name.
fn build_user_programs(root: &std::path::Path) {
    use std::process::Command;
    let user = root.join("user");
    watch_user_inputs(root);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = out.join("user-target");

    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&user).args([
        "build",
        "--release",
        "--manifest-path",
        "Cargo.toml",
        "--target",
        "x86_64-user.json",
        "-Zjson-target-spec",
        "-Zbuild-std=core,alloc,compiler_builtins",
        "-Zbuild-std-features=compiler-builtins-mem",
    ]);
    cmd.arg("--target-dir").arg(&target_dir);
    // The outer build's settings are for the kernel target: flags, target
    // dir, wrappers (clippy-driver under `cargo kclippy`) and jobserver must
    // not leak into the user build. CARGO_HOME and RUSTC (the same compiler)
    // may stay.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let leaks = (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "MAKEFLAGS"
                    | "MFLAGS"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
            );
        if leaks {
            cmd.env_remove(key);
        }
    }
    // Cargo's progress goes to stderr, shown if the build fails; stdout is
    // reserved for this script's `cargo:` lines.
    cmd.stdout(std::io::stderr());
    let status = cmd
        .status()
        .expect("cannot run cargo for the user programs");
    assert!(
        status.success(),
        "building the user programs (user/) failed: {status}"
    );

    let mut names: Vec<String> = std::fs::read_dir(user.join("src/bin"))
        .expect("user/src/bin")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let stem = path.file_stem()?.to_str()?.to_string();
            let is_program =
                path.extension().is_some_and(|x| x == "rs") || path.join("main.rs").is_file();
            is_program.then_some(stem)
        })
        .collect();
    names.sort();
    let bin_dir = target_dir.join("x86_64-user/release");
    let mut s = String::from(
        "/// Every user program, built from user/src/bin, as (name, ELF image).\n\
         pub static PROGRAMS: &[(&str, &[u8])] = &[\n",
    );
    for name in &names {
        let elf = bin_dir.join(name);
        assert!(
            elf.is_file(),
            "user program {name} was not built at {}",
            elf.display()
        );
        if let Err(e) = check_user_elf(&std::fs::read(&elf).unwrap()) {
            panic!("user program {name} ({}): {e}", elf.display());
        }
        writeln!(
            s,
            "    ({name:?}, include_bytes!({:?})),",
            elf.display().to_string()
        )
        .unwrap();
    }
    s.push_str("];\n");
    std::fs::write(out.join("user_programs.rs"), s).unwrap();
}

/// Checks what the kernel's loader relies on, so a program that breaks it
/// fails the build with a reason instead of misbehaving at run time: a
/// static x86-64 executable (no interpreter, no dynamic section, no
/// thread-local storage), every PT_LOAD inside user space
/// (`abi::mman::USER_START..USER_END`), file offset and address congruent
/// modulo the page size, no segment both writable and executable, and the
/// entry point in an executable segment.
fn check_user_elf(elf: &[u8]) -> Result<(), String> {
    use abi::mman::{USER_END, USER_START};
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes(b.try_into().unwrap()))
    };
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    let short = || "truncated ELF".to_string();
    if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err("not a little-endian ELF64 file".into());
    }
    if u16_at(16) != Some(2) || u16_at(18) != Some(62) {
        return Err(
            "not an x86-64 executable (ET_EXEC); PIE and relocatable files are not loaded".into(),
        );
    }
    let entry = u64_at(24).ok_or_else(short)?;
    let phoff = u64_at(32).ok_or_else(short)? as usize;
    let phentsize = u16_at(54).ok_or_else(short)? as usize;
    let phnum = u16_at(56).ok_or_else(short)? as usize;
    let mut entry_ok = false;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let kind = u32_at(ph).ok_or_else(short)?;
        let flags = u32_at(ph + 4).ok_or_else(short)?;
        let offset = u64_at(ph + 8).ok_or_else(short)?;
        let vaddr = u64_at(ph + 16).ok_or_else(short)?;
        let filesz = u64_at(ph + 32).ok_or_else(short)?;
        let memsz = u64_at(ph + 40).ok_or_else(short)?;
        match kind {
            2 => return Err("has a dynamic section: link it statically".into()),
            3 => return Err("asks for an interpreter: link it statically".into()),
            7 => return Err("uses thread-local storage, which the kernel does not set up".into()),
            1 => {}
            _ => continue,
        }
        let end = vaddr.checked_add(memsz).ok_or("segment wraps")?;
        if vaddr < USER_START || end > USER_END {
            return Err(format!(
                "segment {vaddr:#x}..{end:#x} is outside user space"
            ));
        }
        if filesz > memsz
            || offset
                .checked_add(filesz)
                .is_none_or(|e| e > elf.len() as u64)
        {
            return Err(format!("segment at {vaddr:#x} has bad sizes"));
        }
        if vaddr % 4096 != offset % 4096 {
            return Err(format!(
                "segment at {vaddr:#x}: address and file offset differ modulo 4096"
            ));
        }
        if flags & 3 == 3 {
            return Err(format!(
                "segment at {vaddr:#x} is both writable and executable"
            ));
        }
        entry_ok |= flags & 1 != 0 && (vaddr..end).contains(&entry);
    }
    if !entry_ok {
        return Err(format!(
            "entry point {entry:#x} is not in an executable segment"
        ));
    }
    Ok(())
}
