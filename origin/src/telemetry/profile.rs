//! On-demand CPU profiles for `POST /performance/apm/profile`: samples every thread at 99 Hz
//! for a bounded time (`pprof`) and returns folded stacks (`thread;root;…;leaf count` per
//! line), the input format of flamegraph tools (inferno, flamegraph.pl, speedscope). One
//! profile at a time per process.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Longest profile accepted.
pub const MAX_SECONDS: u64 = 30;
/// Sampling frequency (Hz); not a multiple of common timer rates.
const FREQUENCY: i32 = 99;

static RUNNING: AtomicBool = AtomicBool::new(false);

/// Why no profile was taken.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Another profile is running in this process.
    #[error("a profile is already running in this process; wait for it to finish")]
    Busy,
    /// The profiler could not start or report.
    #[error("the profiler failed: {0}")]
    Failed(String),
}

struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::SeqCst);
    }
}

/// Samples the process for `duration` (blocking this thread) and returns folded stacks,
/// heaviest first.
pub fn folded_stacks(duration: Duration) -> Result<String, ProfileError> {
    if RUNNING.swap(true, Ordering::SeqCst) {
        return Err(ProfileError::Busy);
    }
    let _running = Running;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| ProfileError::Failed(e.to_string()))?;
    std::thread::sleep(duration);
    let report = guard
        .report()
        .build()
        .map_err(|e| ProfileError::Failed(e.to_string()))?;
    let mut lines: Vec<(String, isize)> = report
        .data
        .iter()
        .map(|(frames, count)| {
            let mut stack = frames.thread_name_or_id().replace([';', ' '], "_");
            for symbols in frames.frames.iter().rev() {
                for symbol in symbols.iter().rev() {
                    stack.push(';');
                    stack.push_str(&symbol.name().replace([';', ' '], "_"));
                }
            }
            (stack, *count)
        })
        .collect();
    lines.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = String::new();
    for (stack, count) in lines {
        let _ = writeln!(out, "{stack} {count}");
    }
    Ok(out)
}
