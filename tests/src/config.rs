//! The settings of one guest run, and the QEMU command line they make.
//!
//! Every setting has an environment variable (the names `make` uses: `SMP`,
//! `MEM`, `ACCEL`, ...) and a command-line flag of `qemu-run` that overrides it.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Boot and run the demo (`make run`).
    Run,
    /// Run the in-kernel tests and judge their KTAP output (`make ktest`).
    Test,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accel {
    /// QEMU's emulator: slow but the same everywhere. The default, because
    /// KVM on these machines is a nested software hypervisor where every port
    /// I/O exit costs about 100 µs.
    Tcg,
    Kvm,
}

/// How TCG maps virtual CPUs onto host threads.
///
/// Neither choice is always faster when virtual CPUs outnumber host CPUs:
/// `multi` suffers when the host preempts a thread holding a guest spinlock
/// (the others spin through whole host time slices), `single` when a CPU
/// spins waiting for another, which only runs at its next round-robin turn.
/// Measured on a 2-core host, all kernel tests: an early kernel took 278 s at
/// SMP=8 with `multi` and 1 s with `single`; a later one hung in an rwsem test
/// at SMP=8 with `single` (that test alone: 1.3 s with `multi`). Hence the
/// `TCG_THREAD=` override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcgThread {
    /// `multi` when every virtual CPU can have a host CPU, `single` otherwise.
    Auto,
    /// One host thread per virtual CPU: true parallelism.
    Multi,
    /// One host thread runs every virtual CPU in turn.
    Single,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub kernel: PathBuf,
    pub qemu: String,
    pub smp: u32,
    pub mem: String,
    pub accel: Accel,
    pub tcg_thread: TcgThread,
    /// CPUs of this machine, for `TcgThread::Auto`.
    pub host_cpus: usize,
    /// Overrides the CPU model chosen for the accelerator.
    pub cpu: Option<String>,
    /// `None`: never kill the guest.
    pub timeout: Option<Duration>,
    /// Comma-separated test names for `ktest=`; empty runs all tests.
    pub ktest: String,
    /// Passed through to the kernel command line as is.
    pub append: String,
    /// Extra QEMU arguments, split on whitespace.
    pub qemu_args: String,
    /// Wait for GDB on :1234 (`-s -S`) before the first instruction.
    pub gdb: bool,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

impl Config {
    /// Defaults overridden by the environment. `target_dir` locates the kernel.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let target_dir = env("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
        let mut config = Config {
            mode: Mode::Run,
            kernel: PathBuf::from(target_dir).join("x86_64-target/debug/kernel"),
            qemu: "qemu-system-x86_64".into(),
            smp: 4,
            mem: "256M".into(),
            accel: Accel::Tcg,
            tcg_thread: TcgThread::Auto,
            host_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: None,
            timeout: Some(DEFAULT_TIMEOUT),
            ktest: String::new(),
            append: String::new(),
            qemu_args: String::new(),
            gdb: false,
        };
        for key in [
            "MODE",
            "KERNEL",
            "QEMU",
            "SMP",
            "MEM",
            "ACCEL",
            "TCG_THREAD",
            "CPU",
            "TIMEOUT",
            "KTEST",
            "APPEND",
            "QEMU_ARGS",
        ] {
            if let Some(value) = env(key).filter(|v| !v.is_empty()) {
                config.set(&key.to_ascii_lowercase(), &value)?;
            }
        }
        Ok(config)
    }

    /// Sets one setting by its flag name (`smp` for `--smp` and `SMP`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "mode" => {
                self.mode = match value {
                    "run" => Mode::Run,
                    "test" | "ktest" => Mode::Test,
                    _ => return Err(format!("mode must be run or test, not `{value}`")),
                }
            }
            "kernel" => self.kernel = value.into(),
            "qemu" => self.qemu = value.into(),
            "smp" => {
                self.smp = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=255).contains(n))
                    .ok_or(format!("bad SMP `{value}`"))?
            }
            "mem" => self.mem = value.into(),
            "accel" => {
                self.accel = match value {
                    "tcg" => Accel::Tcg,
                    "kvm" => Accel::Kvm,
                    _ => return Err(format!("ACCEL must be tcg or kvm, not `{value}`")),
                }
            }
            "tcg_thread" | "tcg-thread" => {
                self.tcg_thread = match value {
                    "auto" => TcgThread::Auto,
                    "multi" => TcgThread::Multi,
                    "single" => TcgThread::Single,
                    _ => {
                        return Err(format!(
                            "TCG_THREAD must be auto, multi or single, not `{value}`"
                        ));
                    }
                }
            }
            "cpu" => self.cpu = Some(value.into()),
            "timeout" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| format!("bad TIMEOUT `{value}` (seconds)"))?;
                self.timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "ktest" => self.ktest = value.into(),
            "append" => self.append = value.into(),
            "qemu_args" | "qemu-args" => self.qemu_args = value.into(),
            _ => return Err(format!("unknown setting `{key}`")),
        }
        Ok(())
    }

    /// The kernel command line (`-append`).
    pub fn cmdline(&self) -> String {
        let mut parts = vec![match self.mode {
            Mode::Run => "mode=run".to_string(),
            // The guest cannot see `-smp`; `smp_all_cpus_online` checks the
            // CPUs it brought up against this number as well as the MADT.
            Mode::Test => format!("mode=test expect_cpus={}", self.smp),
        }];
        if !self.ktest.is_empty() {
            parts.push(format!("ktest={}", self.ktest));
        }
        if !self.append.is_empty() {
            parts.push(self.append.clone());
        }
        parts.join(" ")
    }

    /// The arguments after the QEMU binary.
    pub fn qemu_argv(&self) -> Vec<String> {
        let (accel, cpu) = match self.accel {
            Accel::Tcg => {
                let multi = match self.tcg_thread {
                    TcgThread::Auto => self.smp as usize <= self.host_cpus,
                    TcgThread::Multi => true,
                    TcgThread::Single => false,
                };
                let thread = if multi {
                    "tcg,thread=multi"
                } else {
                    "tcg,thread=single"
                };
                // `max`: every feature TCG can emulate.
                (thread, "max")
            }
            // `-cpu host` alone aborts on these nested hypervisors.
            Accel::Kvm => ("kvm", "host,-arch-capabilities"),
        };
        let cpu = self.cpu.as_deref().unwrap_or(cpu);
        let mut argv: Vec<String> = [
            "-machine",
            "q35",
            "-accel",
            accel,
            "-cpu",
            cpu,
            "-smp",
            &self.smp.to_string(),
            "-m",
            &self.mem,
            "-kernel",
            &self.kernel.to_string_lossy(),
            "-append",
            &self.cmdline(),
            "-serial",
            "stdio",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.gdb {
            argv.extend(["-s".into(), "-S".into()]);
        }
        argv.extend(self.qemu_args.split_whitespace().map(String::from));
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_env(|k| vars.get(k).cloned())
    }

    fn after<'a>(argv: &'a [String], flag: &str) -> &'a str {
        let i = argv
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("no {flag}"));
        &argv[i + 1]
    }

    #[test]
    fn defaults_boot_four_cpus_under_tcg_in_run_mode() {
        let mut c = config(&[]).unwrap();
        c.host_cpus = 4;
        let argv = c.qemu_argv();
        assert_eq!(after(&argv, "-smp"), "4");
        assert_eq!(after(&argv, "-accel"), "tcg,thread=multi");
        assert_eq!(after(&argv, "-cpu"), "max");
        assert_eq!(after(&argv, "-append"), "mode=run");
        assert_eq!(after(&argv, "-kernel"), "target/x86_64-target/debug/kernel");
        assert_eq!(
            after(&argv, "-device"),
            "isa-debug-exit,iobase=0xf4,iosize=0x04"
        );
        assert!(argv.contains(&"-no-reboot".to_string()));
        assert!(!argv.contains(&"-S".to_string()));
        assert_eq!(c.timeout, Some(DEFAULT_TIMEOUT));
    }

    #[test]
    fn environment_overrides_defaults() {
        let c = config(&[
            ("MODE", "test"),
            ("SMP", "3"),
            ("MEM", "4G"),
            ("ACCEL", "kvm"),
            ("KTEST", "a,b"),
            ("APPEND", "ktest.selftest=fail pervma=off"),
            ("QEMU_ARGS", "-d int  -D /tmp/q.log"),
            ("TIMEOUT", "0"),
            ("CARGO_TARGET_DIR", "/tmp/t"),
        ])
        .unwrap();
        let argv = c.qemu_argv();
        assert_eq!(after(&argv, "-smp"), "3");
        assert_eq!(after(&argv, "-m"), "4G");
        assert_eq!(after(&argv, "-accel"), "kvm");
        assert_eq!(after(&argv, "-cpu"), "host,-arch-capabilities");
        assert_eq!(
            after(&argv, "-append"),
            "mode=test expect_cpus=3 ktest=a,b ktest.selftest=fail pervma=off"
        );
        assert_eq!(after(&argv, "-kernel"), "/tmp/t/x86_64-target/debug/kernel");
        assert!(argv.ends_with(&["-d".into(), "int".into(), "-D".into(), "/tmp/q.log".into()]));
        assert_eq!(c.timeout, None);
    }

    #[test]
    fn tcg_runs_one_thread_when_cpus_outnumber_the_host() {
        let mut c = config(&[("SMP", "16")]).unwrap();
        c.host_cpus = 2;
        assert_eq!(after(&c.qemu_argv(), "-accel"), "tcg,thread=single");
        c.set("tcg_thread", "multi").unwrap();
        assert_eq!(after(&c.qemu_argv(), "-accel"), "tcg,thread=multi");
        let mut c = config(&[("SMP", "2"), ("TCG_THREAD", "single")]).unwrap();
        c.host_cpus = 2;
        assert_eq!(after(&c.qemu_argv(), "-accel"), "tcg,thread=single");
        assert!(config(&[("TCG_THREAD", "many")]).is_err());
    }

    #[test]
    fn empty_variables_keep_defaults() {
        let c = config(&[("SMP", ""), ("ACCEL", "")]).unwrap();
        assert_eq!((c.smp, c.accel), (4, Accel::Tcg));
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(config(&[("SMP", "0")]).is_err());
        assert!(config(&[("SMP", "four")]).is_err());
        assert!(config(&[("ACCEL", "hvf")]).is_err());
        assert!(config(&[("MODE", "bench")]).is_err());
        assert!(config(&[("TIMEOUT", "5m")]).is_err());
    }

    #[test]
    fn gdb_adds_wait_for_debugger() {
        let mut c = config(&[("CPU", "qemu64,+x2apic")]).unwrap();
        c.gdb = true;
        let argv = c.qemu_argv();
        assert_eq!(after(&argv, "-cpu"), "qemu64,+x2apic");
        assert!(argv.ends_with(&["-s".into(), "-S".into()]));
    }
}
