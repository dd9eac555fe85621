//! The real `kamshub serve` binary as a child process: its log lines, its address, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Daemon {
    /// Starts `kamshub serve` in `dir` with no `KAMSHUB_*` variable but `env`, listening on a
    /// free port unless `env` names one.
    pub fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Daemon {
        Self::start_with(dir, &[], env)
    }

    /// Like [`Daemon::start`], with `args` after `serve` (`--roles http`).
    pub fn start_with(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kamshub"));
        for (key, _) in std::env::vars() {
            if key.starts_with("KAMSHUB_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .env("KAMSHUB_HTTP__LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon { child, lines, log: Vec::new() }
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {needle:?}; log so far: {:#?}", self.log),
            }
        }
    }

    /// The log lines written so far (the last `n`), without waiting: for a failing test to show.
    pub fn recent_log(&mut self, n: usize) -> String {
        self.log.extend(self.lines.try_iter());
        self.log[self.log.len().saturating_sub(n)..].join("\n")
    }

    /// Waits for the `listening` line and returns the address it names.
    pub fn address(&mut self) -> String {
        let listening = strip_ansi(&self.wait_for("listening"));
        listening.split("address=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned()
    }

    /// Sends SIGTERM, waits for the exit, and returns the status with the whole log.
    pub fn terminate(self) -> (std::process::ExitStatus, Vec<String>) {
        self.sigterm();
        self.wait()
    }

    /// Sends SIGTERM and returns at once (the daemon drains meanwhile).
    pub fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the exit and returns the status with the whole log.
    pub fn wait(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = self.child.wait().unwrap();
        let mut log = std::mem::take(&mut self.log);
        log.extend(self.lines.iter());
        (status, log)
    }
}

/// A daemon a failed test leaves behind is killed, not left running.
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `s` without ANSI colour sequences.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
