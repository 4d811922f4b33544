//! Runs a child process, hands over its output line by line as it arrives,
//! and kills it when it overruns its time.
//!
//! Reading a pipe blocks, so one thread per pipe (stdout and stderr) reads
//! lines and sends them down a channel; the calling thread waits on that
//! channel with a deadline. The caller never blocks on a read, so a guest that
//! prints nothing and never exits is still killed on time.

use crate::verdict::GuestExit;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How often the loop checks whether the child has exited while its pipes are
/// still open (a grandchild may hold them).
const POLL: Duration = Duration::from_millis(100);
/// After the child exits, the rest of its output is read until the pipes
/// close or stay quiet this long (a grandchild may hold them open). Quiet,
/// not total: handling a line may be slow (a backtrace line runs
/// `addr2line`), and lines still queued must not be dropped.
const DRAIN: Duration = Duration::from_secs(1);
/// However much keeps coming, reading stops this long after the exit.
const DRAIN_MAX: Duration = Duration::from_secs(60);
/// After SIGTERM, how long QEMU gets to restore the terminal before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Spawns `cmd` with stdout and stderr piped and calls `on_line` for every
/// line of either, without its line ending. Returns how the child ended.
pub fn run(
    cmd: Command,
    timeout: Option<Duration>,
    on_line: impl FnMut(&str),
) -> io::Result<GuestExit> {
    run_in(cmd, timeout, Group::Shared, on_line)
}

/// Like [`run`], but the child leads a process group of its own and a
/// timeout kills the whole group. For `cargo test`, whose test binaries are
/// its children: killing cargo alone would leave a hung test running. Not for
/// QEMU under `make run`, which must stay in the terminal's foreground group
/// so that Ctrl-C reaches it.
pub fn run_group(
    cmd: Command,
    timeout: Option<Duration>,
    on_line: impl FnMut(&str),
) -> io::Result<GuestExit> {
    run_in(cmd, timeout, Group::Own, on_line)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Shared,
    Own,
}

fn run_in(
    mut cmd: Command,
    timeout: Option<Duration>,
    group: Group,
    mut on_line: impl FnMut(&str),
) -> io::Result<GuestExit> {
    let start = Instant::now();
    let deadline = timeout.map(|t| start + t);
    if group == Group::Own {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let (tx, rx) = mpsc::channel();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        thread::spawn(move || forward_lines(pipe, tx));
    }
    // Only the reader threads hold senders now: the channel disconnects when
    // both pipes reach end of file.
    drop(tx);

    let mut exited: Option<(ExitStatus, Instant)> = None;
    let mut last_line = Instant::now();
    loop {
        let now = Instant::now();
        if exited.is_none() && deadline.is_some_and(|d| now >= d) {
            // Lines already received may name the test that hung: hand them
            // over before and after the kill.
            rx.try_iter().for_each(|line| on_line(&line));
            stop(&mut child, group)?;
            drain(&rx, &mut on_line);
            return Ok(GuestExit::TimedOut(now - start));
        }
        match rx.recv_timeout(POLL) {
            Ok(line) => {
                on_line(&line);
                last_line = Instant::now();
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if exited.is_none() {
            exited = child.try_wait()?.map(|status| (status, Instant::now()));
        }
        if let Some((_, at)) = exited
            && (at.max(last_line).elapsed() > DRAIN || at.elapsed() > DRAIN_MAX)
        {
            break;
        }
    }
    match exited {
        Some((status, _)) => Ok(to_exit(status)),
        None => wait_until(&mut child, deadline, start, group),
    }
}

/// Hands over what the pipes still deliver, until they are quiet for
/// `DRAIN` (or `DRAIN_MAX` has passed).
fn drain(rx: &mpsc::Receiver<String>, on_line: &mut impl FnMut(&str)) {
    let until = Instant::now() + DRAIN_MAX;
    while Instant::now() < until {
        match rx.recv_timeout(DRAIN) {
            Ok(line) => on_line(&line),
            Err(_) => return,
        }
    }
}

fn forward_lines(pipe: Box<dyn Read + Send>, tx: mpsc::Sender<String>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                // Serial output ends lines with "\r\n", and a guest may print
                // bytes that are not UTF-8: neither must stop the runner.
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']).to_string();
                if tx.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

/// The pipes closed; wait for the exit itself, still under the deadline.
fn wait_until(
    child: &mut Child,
    deadline: Option<Instant>,
    start: Instant,
    group: Group,
) -> io::Result<GuestExit> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(to_exit(status));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop(child, group)?;
            return Ok(GuestExit::TimedOut(start.elapsed()));
        }
        thread::sleep(POLL);
    }
}

fn to_exit(status: ExitStatus) -> GuestExit {
    match (status.code(), status.signal()) {
        (Some(code), _) => GuestExit::Status(code),
        (None, Some(sig)) => GuestExit::Signal(sig),
        (None, None) => GuestExit::Signal(0),
    }
}

unsafe extern "C" {
    /// kill(2) from the C library that std already links.
    fn kill(pid: i32, sig: i32) -> i32;
}
const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

/// Asks the child to terminate, then kills it. QEMU restores the terminal
/// (it may have put it in raw mode for `-serial stdio`) on SIGTERM but cannot
/// on SIGKILL. With `Group::Own` the signals go to the child's whole process
/// group (a negative pid), which it leads, so its children die with it.
fn stop(child: &mut Child, group: Group) -> io::Result<()> {
    let pid = child.id() as i32;
    let target = if group == Group::Own { -pid } else { pid };
    // SAFETY: kill(2) only sends a signal. The pid is our own child that has
    // not been waited for, so neither it nor the group it leads can have been
    // reused by another process.
    unsafe { kill(target, SIGTERM) };
    let until = Instant::now() + TERM_GRACE;
    while Instant::now() < until {
        if child.try_wait()?.is_some() {
            break;
        }
        thread::sleep(POLL);
    }
    if group == Group::Own {
        // The leader may be gone while a member ignores SIGTERM.
        // SAFETY: as above; the group id stays ours until every member exits.
        unsafe { kill(target, SIGKILL) };
    }
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    child.kill()?;
    child.wait().map(|_| ())
}

/// A command as a shell line a reader can paste: `cd DIR && K=V program args`.
pub fn describe(cmd: &Command) -> String {
    let env: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={} ", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| format!(" {}", a.to_string_lossy()))
        .collect();
    let dir = cmd
        .get_current_dir()
        .map_or(String::new(), |d| format!("cd {} && ", d.display()));
    format!(
        "{dir}{}{}{}",
        env.concat(),
        cmd.get_program().to_string_lossy(),
        args.concat()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn describe_gives_a_line_to_paste() {
        let mut cmd = Command::new("cargo");
        cmd.args(["test", "-p", "mm"])
            .env("RUSTFLAGS", "--cfg loom");
        assert_eq!(describe(&cmd), "RUSTFLAGS=--cfg loom cargo test -p mm");
        cmd.current_dir("/tmp/x");
        assert_eq!(
            describe(&cmd),
            "cd /tmp/x && RUSTFLAGS=--cfg loom cargo test -p mm"
        );
    }

    fn collect(script: &str, timeout: Option<Duration>) -> (Vec<String>, GuestExit) {
        let mut lines = Vec::new();
        let exit = run(sh(script), timeout, |l| lines.push(l.to_string())).unwrap();
        (lines, exit)
    }

    #[test]
    fn passes_lines_and_exit_status() {
        let (lines, exit) = collect(
            "printf 'a\\r\\nb\\n'; echo err >&2; printf 'no newline'; exit 33",
            None,
        );
        assert_eq!(exit, GuestExit::Status(33));
        let mut sorted = lines.clone();
        sorted.sort();
        assert_eq!(sorted, ["a", "b", "err", "no newline"]);
    }

    #[test]
    fn signal_is_reported() {
        let (_, exit) = collect("kill -9 $$", None);
        assert_eq!(exit, GuestExit::Signal(9));
    }

    #[test]
    fn silent_hang_is_killed_at_the_deadline() {
        let (lines, exit) = collect(
            "echo started; exec sleep 1000",
            Some(Duration::from_secs(1)),
        );
        assert_eq!(lines, ["started"]);
        assert!(matches!(exit, GuestExit::TimedOut(_)), "{exit:?}");
    }

    #[test]
    fn a_process_ignoring_sigterm_is_still_killed() {
        let (_, exit) = collect(
            "trap '' TERM; echo x; while :; do sleep 0.1; done",
            Some(Duration::from_secs(1)),
        );
        assert!(matches!(exit, GuestExit::TimedOut(_)), "{exit:?}");
    }

    #[test]
    fn slow_line_handling_after_the_exit_loses_nothing() {
        // 40 lines at once, then exit; each takes 50 ms to handle (as a
        // backtrace line's addr2line does): 2 s in all, past DRAIN.
        let mut lines = Vec::new();
        let exit = run(
            sh("for i in $(seq 1 40); do echo line$i; done; exit 3"),
            Some(Duration::from_secs(60)),
            |l| {
                thread::sleep(Duration::from_millis(50));
                lines.push(l.to_string());
            },
        )
        .unwrap();
        assert_eq!(exit, GuestExit::Status(3));
        assert_eq!(lines.len(), 40, "lines lost: {lines:?}");
        assert_eq!(lines.last().map(String::as_str), Some("line40"));
    }

    #[test]
    fn a_timeout_kills_the_whole_group() {
        // The grandchild writes its pid, then hangs like a stuck test binary
        // under cargo; the group kill must end it too.
        let mut lines = Vec::new();
        let exit = run_group(
            sh("sh -c 'echo $$; trap \"\" TERM; while :; do sleep 0.1; done' & wait"),
            Some(Duration::from_secs(1)),
            |l| lines.push(l.to_string()),
        )
        .unwrap();
        assert!(matches!(exit, GuestExit::TimedOut(_)), "{exit:?}");
        let pid: i32 = lines[0].parse().unwrap();
        thread::sleep(Duration::from_millis(300));
        // Dead or a zombie waiting for its new parent to reap it.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        assert!(
            matches!(state, None | Some("Z") | Some("X")),
            "grandchild {pid} survived the group kill: {stat}"
        );
    }

    #[test]
    fn a_grandchild_holding_the_pipe_does_not_block_the_exit() {
        let (lines, exit) = collect(
            "sleep 1000 & echo $!; exit 35",
            Some(Duration::from_secs(600)),
        );
        assert_eq!(exit, GuestExit::Status(35));
        let _ = Command::new("kill").arg(&lines[0]).status();
    }
}
