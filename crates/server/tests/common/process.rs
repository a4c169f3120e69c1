//! The real `secureinfer serve` as a child process: started with a clean environment, its
//! URL read from the "listening on" line, its log collected, stopped on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_secureinfer");

pub struct Process {
    child: Child,
    pub url: String,
    stderr: mpsc::Receiver<String>,
}

/// The binary with only PATH and `vars` in its environment, run in `dir` (no stray `.env`).
pub fn command(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear().current_dir(dir);
    if let Ok(path) = std::env::var("PATH") {
        c.env("PATH", path);
    }
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

impl Process {
    /// Starts `serve` on a free loopback port with the mock upstream; `vars` add or override.
    pub fn serve(dir: &Path, vars: &[(&str, &str)]) -> Result<Process, String> {
        let mut all = vec![
            ("API_HOST", "127.0.0.1"),
            ("API_PORT", "0"),
            ("UPSTREAM", "mock"),
            ("MODEL_NAME", super::MODEL),
            ("ADMIN_API_KEY", super::ADMIN_KEY),
            ("LOG_LEVEL", "info"),
            ("LOG_FORMAT", "json"),
        ];
        all.extend_from_slice(vars);
        let mut child = command(dir, &all)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let (etx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if etx.send(line).is_err() {
                    break;
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("secureinfer listening on ") {
                        // Keep stdout drained so the child never blocks on a full pipe.
                        std::thread::spawn(move || while rx.recv().is_ok() {});
                        return Ok(Process {
                            child,
                            url: url.trim().to_string(),
                            stderr,
                        });
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().map_err(|e| e.to_string())?;
                    // The child is gone: its stderr reaches EOF and the reader thread ends.
                    let log: Vec<String> = stderr.iter().collect();
                    return Err(format!(
                        "serve exited ({status}) before listening:\n{}",
                        log.join("\n")
                    ));
                }
            }
        }
    }

    /// Waits (at most `within`) for a log line containing `needle`; returns it.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Process {
    /// Sends SIGTERM and waits (at most `within`) for the process to exit on its own.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().ok()?;
        if !sent.success() {
            return None;
        }
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Polling the exit status: std offers no wait with a timeout.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `serve` expecting it to fail at start-up; returns its stderr.
pub fn serve_fails(dir: &Path, vars: &[(&str, &str)]) -> String {
    match Process::serve(dir, vars) {
        Ok(p) => panic!("serve started on {} but should have failed", p.url),
        Err(log) => log,
    }
}
