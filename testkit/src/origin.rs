//! A scriptable HTTP origin on 127.0.0.1 for edge tests: every request is logged and answered
//! by a handler the test can swap; the origin can be stopped (connections refused) and
//! started again on the same port.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::net::free_port;
use crate::{HarnessError, Result};

/// A request as the origin saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Seen {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the origin answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    /// A 200 with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// A bare status.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::ok(format!("status {status}"))
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Answers after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = Arc<Mutex<Box<dyn Fn(&Seen) -> Reply + Send>>>;

/// The origin.
pub struct TestOrigin {
    port: u16,
    handler: Handler,
    log: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// While stopped: a socket bound to the port but not listening, so connections are
    /// refused and no other test can take the port.
    hold: Option<socket2::Socket>,
}

impl TestOrigin {
    /// Starts on a free port, answering with `handler`.
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + 'static) -> Result<Self> {
        let mut origin = Self {
            port: free_port()?,
            handler: Arc::new(Mutex::new(Box::new(handler))),
            log: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            hold: None,
        };
        origin.resume()?;
        Ok(origin)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the handler.
    pub fn set(&self, handler: impl Fn(&Seen) -> Reply + Send + 'static) {
        if let Ok(mut h) = self.handler.lock() {
            *h = Box::new(handler);
        }
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stops listening: new connections are refused, and the port stays reserved.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().ok();
            self.hold = hold_port(self.port);
        }
    }

    /// Listens again on the same port.
    pub fn resume(&mut self) -> Result<()> {
        if self.thread.is_some() {
            return Ok(());
        }
        self.hold = None;
        let server = tiny_http::Server::http(("127.0.0.1", self.port)).map_err(|e| {
            HarnessError::Command {
                command: format!("test origin on port {}", self.port),
                output: e.to_string(),
            }
        })?;
        self.stop.store(false, Ordering::SeqCst);
        let (handler, log, stop) = (self.handler.clone(), self.log.clone(), self.stop.clone());
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(20)) else {
                    continue;
                };
                let mut body = Vec::new();
                request.as_reader().read_to_end(&mut body).ok();
                let seen = Seen {
                    method: request.method().as_str().to_string(),
                    path: request.url().to_string(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_ascii_lowercase(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect(),
                    body,
                };
                if let Ok(mut l) = log.lock() {
                    l.push(seen.clone());
                }
                let reply = handler
                    .lock()
                    .map(|h| h(&seen))
                    .unwrap_or_else(|_| Reply::status(500));
                std::thread::spawn(move || {
                    std::thread::sleep(reply.delay);
                    let mut response =
                        tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
                    for (name, value) in &reply.headers {
                        if let Ok(h) =
                            tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                        {
                            response.add_header(h);
                        }
                    }
                    request.respond(response).ok();
                });
            }
        }));
        Ok(())
    }
}

/// Binds `port` on 127.0.0.1 without listening.
fn hold_port(port: u16) -> Option<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket.set_reuse_address(true).ok()?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    socket.bind(&addr.into()).ok()?;
    Some(socket)
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}
