//! Loopback ports and readiness polling.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::{HarnessError, Result};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
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
