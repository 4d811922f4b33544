//! In-kernel benchmarks, run when the command line says `mode=bench`.

pub fn run() {
    crate::println_raw!("# bench: no kernel figures yet");
}
