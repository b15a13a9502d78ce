//! Running programs: as the `postgres` user when we are root, capturing output for errors, and
//! child processes that are killed when their guard is dropped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{HarnessError, Result};

/// Whether this process runs as root (PostgreSQL refuses to run as root).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Finds `program` on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Runs a command to completion; a non-zero exit is an error carrying its output.
pub fn run(command: &mut Command) -> Result<String> {
    let shown = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::Command {
            command: shown.clone(),
            output: e.to_string(),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(HarnessError::Command {
            command: shown,
            output: format!(
                "{}: {}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

/// A command for `program`, run as `user` through `runuser` when we are root.
pub fn command_as(user: &str, program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.arg("-u").arg(user).arg("--").arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Hands `path` (and everything under it) to `user` when we are root.
pub fn give_to(user: &str, path: &Path) -> Result<()> {
    if is_root() {
        run(Command::new("chown").arg("-R").arg(user).arg(path))?;
    }
    Ok(())
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child process killed (SIGKILL) and reaped when dropped; with [`ChildGuard::spawn_group`]
/// its whole process group goes too (for programs that start helpers, like wrangler/workerd).
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    group: bool,
}

impl ChildGuard {
    /// Spawns `command` in a new process group; killing the guard kills the group.
    pub fn spawn_group(command: &mut Command, log: &Path) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        let mut guard = Self::spawn(command, log)?;
        guard.group = true;
        Ok(guard)
    }

    /// Spawns `command` with its output sent to `log`.
    pub fn spawn(command: &mut Command, log: &Path) -> Result<Self> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| HarnessError::Command {
                command: format!("{command:?}"),
                output: e.to_string(),
            })?;
        Ok(Self {
            child: Some(child),
            group: false,
        })
    }

    /// Kills the process (or its group) now and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.group {
                Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stderr(Stdio::null())
                    .status()
                    .ok();
            }
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Asks the process to stop (SIGTERM), as Kubernetes does.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status()
                .ok();
        }
    }

    /// Waits up to `limit` for the process to exit; its exit status, or `None` if it is
    /// still running.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let start = std::time::Instant::now();
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
