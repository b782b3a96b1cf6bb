//! Child processes for the harness: commands run to completion under a deadline, and long-running
//! daemons (server, simulated fleet) that are stopped with their whole process group on drop.
//!
//! Every child gets its own process group so that a timeout or a drop also ends what it started
//! (Terraform's provider plugins, for instance) instead of leaving orphans holding our pipes.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often a waiting loop looks again. Short enough not to slow tests, long enough not to spin.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    /// The command line, for failure messages.
    pub(crate) command: String,
    /// Exit code; a child killed by signal N reports 128 + N, as a shell would.
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Finished {
    /// Panics, with everything the command printed, unless it exited with `expected`.
    #[track_caller]
    pub(crate) fn assert_code(&self, expected: i32) -> &Self {
        if self.code != expected {
            panic!(
                "expected exit code {expected}, got {}: {}\n--- stdout\n{}\n--- stderr\n{}",
                self.code, self.command, self.stdout, self.stderr
            );
        }
        self
    }

    #[track_caller]
    pub(crate) fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }
}

/// Runs `cmd` with stdin closed and its output captured; panics when it outlives `timeout`
/// (after killing its process group), so a hung command fails the test instead of hanging it.
pub(crate) fn run(cmd: &mut Command, timeout: Duration) -> Finished {
    let command = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|err| panic!("spawning {command}: {err}"));
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) => {
                signal_group(child.id(), "KILL");
                let _ = child.wait();
                panic!(
                    "timed out after {timeout:?}: {command}\n--- stdout\n{}\n--- stderr\n{}",
                    collect(&stdout, child.id()),
                    collect(&stderr, child.id())
                );
            }
            Err(err) => panic!("waiting for {command}: {err}"),
        }
    };
    Finished {
        code: exit_code(status),
        stdout: collect(&stdout, child.id()),
        stderr: collect(&stderr, child.id()),
        command,
    }
}

/// A long-running child whose stdout and stderr lines go to a shared log (and to an optional
/// observer, which is how the server's bound addresses are read). Dropping it stops the child:
/// SIGTERM to its process group, then SIGKILL if it is still there after a grace period.
pub(crate) struct Daemon {
    name: String,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `cmd`; `on_line` sees every line of its stderr (on a reader thread).
    pub(crate) fn spawn(
        name: &str,
        cmd: &mut Command,
        on_line: impl FnMut(&str) + Send + 'static,
    ) -> Self {
        let command = describe(cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("spawning {name} ({command}): {err}"));
        let log = Arc::new(Mutex::new(String::new()));
        follow(
            child.stdout.take().expect("stdout is piped"),
            &log,
            "out",
            |_| {},
        );
        follow(
            child.stderr.take().expect("stderr is piped"),
            &log,
            "err",
            on_line,
        );
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Everything the child printed so far, one `out| ` or `err| ` prefixed line each.
    pub(crate) fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Panics with the log when the child has already exited: a daemon that died is a failure.
    #[track_caller]
    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{} exited early with code {}\n--- log\n{}",
                self.name,
                exit_code(status),
                self.log()
            );
        }
    }

    /// Stops the child (TERM, then KILL after `grace`) and returns its exit code.
    pub(crate) fn stop(&mut self, grace: Duration) -> i32 {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            return exit_code(status);
        }
        signal_group(self.child.id(), "TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return exit_code(status);
            }
            thread::sleep(POLL);
        }
        signal_group(self.child.id(), "KILL");
        exit_code(self.child.wait().expect("wait"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
        // A failing test shows what its daemons said; cargo test prints this only on failure.
        if thread::panicking() {
            eprintln!("--- {} log\n{}", self.name, self.log());
        }
    }
}

/// Sends `signal` to the process group led by `pgid`. There is no safe std API for kill(2) and the
/// workspace denies `unsafe`, so this goes through the `kill` command; failures (the group is
/// already gone) are ignored on purpose.
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".to_owned(), format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Reads a pipe to its end on a thread, handing the bytes over through a channel.
fn drain(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

/// Waits for a drained pipe. A grandchild that outlived the command can keep the pipe open; after
/// a grace period its process group is killed so the read ends.
fn collect(rx: &Receiver<Vec<u8>>, pgid: u32) -> String {
    let bytes = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| {
            signal_group(pgid, "KILL");
            rx.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| b"<output not collected: pipe held open>".to_vec())
        });
    String::from_utf8_lossy(&bytes).into_owned()
}

fn follow(
    pipe: impl Read + Send + 'static,
    log: &Arc<Mutex<String>>,
    tag: &'static str,
    mut on_line: impl FnMut(&str) + Send + 'static,
) {
    let log = Arc::clone(log);
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&raw);
                    let line = line.trim_end_matches(['\r', '\n']);
                    on_line(line);
                    let mut log = log.lock().expect("log lock");
                    log.push_str(tag);
                    log.push_str("| ");
                    log.push_str(line);
                    log.push('\n');
                }
            }
        }
    });
}
