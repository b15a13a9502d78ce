//! Loopback ports and readiness polling.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{HarnessError, Result};

/// Ports this process has handed out already (a server may not have bound them yet).
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The kernel's ephemeral range (`net.ipv4.ip_local_port_range`), where outgoing connections
/// take their local port; Linux's default when it cannot be read.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(str::parse::<u16>);
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .unwrap_or((32768, 60999))
}

/// A port on 127.0.0.1 that was free a moment ago and lies outside the ephemeral range, so
/// no outgoing connection (of this or any parallel test) can take it before the server that
/// it is meant for binds it. Chosen at random so parallel test processes rarely pick the same
/// one, and never twice in one process.
pub fn free_port() -> Result<u16> {
    let (lo, hi) = ephemeral_range();
    // The widest stretch outside [lo, hi] above the well-known and registered low ports.
    let (start, end) = if lo.saturating_sub(10_000) >= 65_535 - hi {
        (10_000, lo.saturating_sub(1))
    } else {
        (hi.saturating_add(1), 65_535)
    };
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let port = if start < end {
            fastrand::u16(start..=end)
        } else {
            0
        };
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            let port = listener.local_addr()?.port();
            handed_out.insert(port);
            return Ok(port);
        }
    }
    Err(HarnessError::Command {
        command: format!("bind 127.0.0.1 in {start}..={end}"),
        output: "no free port after 1000 tries".into(),
    })
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn is_listening(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Polls `check` every 50 ms until it returns `Ok(true)` or `timeout` passes. `what` and the
/// last error or `detail()` end up in the timeout error.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
    detail: impl Fn() -> String,
) -> Result<()> {
    let start = Instant::now();
    let mut last_error = String::new();
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = e.to_string(),
        }
        if start.elapsed() > timeout {
            return Err(HarnessError::Timeout {
                what: what.to_string(),
                waited: timeout,
                detail: format!("{last_error} {}", detail()),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
