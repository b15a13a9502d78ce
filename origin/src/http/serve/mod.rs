//! The public listener's connection loop. By default every connection is HTTP/1.1 without
//! sniffing (the edge and the ingress speak HTTP/1.1 to the origin), served by the
//! [`front`]: a [`Shortcut`] answers fresh cache hits straight from the socket, the router
//! the other plainly framed requests; a request the front does not frame hands the
//! connection to hyper's HTTP/1 connection, which serves the router from then on. With
//! `SURGE_PUBLIC_HTTP=auto` hyper's auto builder serves HTTP/1.1 and cleartext HTTP/2 (h2c)
//! side by side from the first byte, for meshes that speak HTTP/2 to the pod.
//!
//! Each accepted socket gets `TCP_NODELAY` (a response leaves as one `writev` of the header
//! block and the body, which Nagle's algorithm would otherwise hold back behind the previous
//! segment's ACK), keep-alive, and a 30 s limit on reading a request's header block. When
//! `stop` completes, the loop stops accepting, every connection finishes the request it is
//! serving and closes, and `serve` returns once all have.

pub mod front;
mod rewind;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

pub use front::Shortcut;
use front::{Outcome, Stop};
use rewind::Rewind;

/// How long a client may take to send a request's header block.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after an accept error that is not about one connection (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The protocols the public listener speaks (`SURGE_PUBLIC_HTTP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 only, without sniffing, through the front (`http1`, the default).
    #[default]
    Http1,
    /// HTTP/1.1 and h2c, told apart by the connection's first bytes (`auto`).
    Auto,
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "http1" => Ok(Self::Http1),
            "auto" => Ok(Self::Auto),
            other => Err(format!(
                "{other:?} is not a protocol choice: write http1 (HTTP/1.1 only) or auto (HTTP/1.1 and h2c)"
            )),
        }
    }
}

/// hyper's connection settings, made once.
struct Builders {
    http1: hyper::server::conn::http1::Builder,
    both: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new() -> Self {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true);
        let mut both = auto::Builder::new(TokioExecutor::new());
        both.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true);
        Self { http1, both }
    }
}

/// Serves `router` on `listener`, with `shortcut` in front of it on HTTP/1.1 connections,
/// until `stop` completes and every connection has closed. Handlers see the peer address as
/// [`ConnectInfo`].
pub async fn serve<S: Shortcut>(
    listener: TcpListener,
    router: Router,
    protocol: Protocol,
    shortcut: Arc<S>,
    stop: impl Future<Output = ()>,
) {
    let builders = Arc::new(Builders::new());
    // Every connection holds a clone of `open`; `closed` ends when the last one is dropped.
    let (open, mut closed) = mpsc::channel::<()>(1);
    // One stop per connection (polling a oneshot takes no lock); dropped ones are swept out
    // as the list doubles.
    let mut stops: Vec<oneshot::Sender<()>> = Vec::new();
    let mut sweep_at = 64;
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // Without it a response may wait for the ACK of the previous one.
        let _ = stream.set_nodelay(true);
        let (tell, told) = oneshot::channel();
        stops.push(tell);
        if stops.len() >= sweep_at {
            stops.retain(|s| !s.is_closed());
            sweep_at = (stops.len() * 2).max(64);
        }
        let connection = Connection {
            peer,
            router: router.clone(),
            builders: builders.clone(),
            shortcut: shortcut.clone(),
            _open: open.clone(),
        };
        tokio::spawn(connection.run(stream, protocol, Stop::new(told)));
    }
    drop(listener);
    for tell in stops {
        let _ = tell.send(());
    }
    drop(open);
    let _ = closed.recv().await;
}

/// One accepted connection and what serving it takes.
struct Connection<S> {
    peer: std::net::SocketAddr,
    router: Router,
    builders: Arc<Builders>,
    shortcut: Arc<S>,
    /// Held while the connection lives (see `serve`).
    _open: mpsc::Sender<()>,
}

impl<S: Shortcut> Connection<S> {
    async fn run(self, mut stream: TcpStream, protocol: Protocol, mut stop: Stop) {
        let (read, stopping) = match protocol {
            Protocol::Http1 => {
                let conn = front::Conn {
                    stream: &mut stream,
                    peer: self.peer,
                    router: &self.router,
                };
                match front::run(conn, &*self.shortcut, &mut stop, HEADER_READ_TIMEOUT).await {
                    Outcome::Closed => return,
                    Outcome::HandOff { read, stopping } => (read, stopping),
                }
            }
            Protocol::Auto => (Bytes::new(), false),
        };
        let (peer, router) = (self.peer, self.router);
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let io = TokioIo::new(Rewind::new(read, stream));
        match protocol {
            Protocol::Http1 => {
                let connection = self.builders.http1.serve_connection(io, service);
                until_done(connection, stop, stopping).await;
            }
            Protocol::Auto => {
                let connection = self.builders.both.serve_connection(io, service);
                until_done(connection, stop, stopping).await;
            }
        }
    }
}

/// Drives hyper's `connection` to its end; once the server stops (or was `stopping` already)
/// it finishes the request in progress and closes.
async fn until_done<C: GracefulConnection>(connection: C, mut stop: Stop, stopping: bool) {
    tokio::pin!(connection);
    if stopping {
        connection.as_mut().graceful_shutdown();
    } else {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = stop.requested() => connection.as_mut().graceful_shutdown(),
        }
    }
    let _ = connection.await;
}

/// Errors about one connection (it went away before it was accepted), not about the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::SocketAddr;

    use axum::Extension;
    use axum::http::Extensions;
    use axum::routing::get;

    use super::front::{Answer, Head};
    use super::*;

    /// What the test shortcut gives the router with a request it passes on.
    #[derive(Clone)]
    struct Passed(&'static str);

    /// Answers `GET /fast` itself; passes the rest on, marked.
    struct Fast;

    impl Shortcut for Fast {
        async fn answer<'a>(&'a self, head: &'a Head<'a>, out: &'a mut Vec<u8>) -> Answer {
            if head.target != "/fast" {
                let mut carry = Extensions::new();
                carry.insert(Passed("by the front"));
                return Answer::Pass(carry);
            }
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n");
            Answer::Sent(Some(Bytes::from_static(b"front")))
        }
    }

    async fn start(
        protocol: Protocol,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let address = listener.local_addr().expect("address");
        let router =
            Router::new()
                .route(
                    "/peer",
                    get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        peer.ip().to_string()
                    }),
                )
                .route(
                    "/slow",
                    get(|| async {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        "done"
                    }),
                )
                .route("/fast", get(|| async { "router" }))
                .route(
                    "/passed",
                    get(|passed: Option<Extension<Passed>>| async move {
                        passed.map_or("nothing", |Extension(Passed(how))| how)
                    }),
                );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, protocol, Arc::new(Fast), async {
            let _ = stopped.await;
        }));
        (address, stop, server)
    }

    /// Sends `requests` on one connection and reads until the server closes it.
    fn exchange(address: SocketAddr, requests: &str) -> String {
        let mut stream = std::net::TcpStream::connect(address).expect("connects");
        stream.write_all(requests.as_bytes()).expect("sends");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("reads");
        answer
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn http1_keeps_the_connection_for_several_requests_and_reports_the_peer() {
        let (address, _stop, _server) = start(Protocol::Http1).await;
        let answer = tokio::task::spawn_blocking(move || {
            exchange(
                address,
                "GET /peer HTTP/1.1\r\nhost: a\r\n\r\nGET /peer HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
            )
        })
        .await
        .expect("joins");
        assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
        assert_eq!(answer.matches("127.0.0.1").count(), 2, "{answer}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn http1_only_refuses_the_http2_preface_and_auto_speaks_it() {
        const PREFACE: &str = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let (address, _stop, _server) = start(Protocol::Http1).await;
        let answer = tokio::task::spawn_blocking(move || exchange(address, PREFACE))
            .await
            .expect("joins");
        assert_eq!(answer, "", "closed without a frame or an answer");
        let (address, _stop, _server) = start(Protocol::Auto).await;
        let answer = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(address).expect("connects");
            stream.write_all(PREFACE.as_bytes()).expect("sends");
            // The server's first frame is its SETTINGS frame: type 4 in the fourth byte.
            let mut frame = [0_u8; 9];
            stream.read_exact(&mut frame).expect("a frame header");
            frame
        })
        .await
        .expect("joins");
        assert_eq!(answer[3], 4, "a SETTINGS frame: {answer:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stopping_finishes_the_request_in_flight_then_returns() {
        let (address, stop, server) = start(Protocol::Http1).await;
        let client = tokio::task::spawn_blocking(move || {
            exchange(address, "GET /slow HTTP/1.1\r\nhost: a\r\n\r\n")
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).expect("the server listens for stop");
        let answer = client.await.expect("joins");
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns once the connection closed")
            .expect("joins");
        assert!(
            std::net::TcpStream::connect(address).is_err(),
            "no longer accepting"
        );
    }

    /// The bodies of the answers in `exchange`'s text, in order.
    fn bodies(answer: &str) -> Vec<&str> {
        answer
            .split("HTTP/1.1 ")
            .skip(1)
            .map(|one| one.split_once("\r\n\r\n").map_or("", |(_, body)| body))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_front_answers_and_routes_pipelined_requests_then_hands_what_it_does_not_frame_to_hyper()
     {
        let (address, _stop, _server) = start(Protocol::Http1).await;
        let answer = tokio::task::spawn_blocking(move || {
            exchange(
                address,
                concat!(
                    "GET /fast HTTP/1.1\r\nhost: a\r\n\r\n",
                    "GET /fast HTTP/1.1\r\nhost: a\r\n\r\n",
                    "GET /passed HTTP/1.1\r\nhost: a\r\n\r\n",
                    "GET /passed HTTP/1.1\r\nhost: a\r\n\r\n",
                    "GET /fast HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
                ),
            )
        })
        .await
        .expect("joins");
        assert_eq!(
            bodies(&answer),
            ["front", "front", "by the front", "by the front", "router"],
            "{answer}"
        );
        let first = answer.split("HTTP/1.1 ").nth(1).expect("an answer");
        assert!(first.contains("\r\ncontent-length: 5\r\n"), "{first}");
        assert!(first.contains("\r\ndate: "), "{first}");
        let routed = answer.split("HTTP/1.1 ").nth(3).expect("an answer");
        assert!(routed.starts_with("200 OK\r\n"), "{routed}");
        assert!(routed.contains("\r\ncontent-length: 12\r\n"), "{routed}");
        assert!(routed.contains("\r\ndate: "), "{routed}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn what_the_front_does_not_answer_plainly_goes_to_hyper() {
        let (address, _stop, _server) = start(Protocol::Http1).await;
        for (request, expected) in [
            (
                "POST /fast HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                "HTTP/1.1 405 ",
            ),
            (
                "GET /fast HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
                "router",
            ),
            ("GET /fast HTTP/1.0\r\nhost: a\r\n\r\n", "router"),
        ] {
            let answer = tokio::task::spawn_blocking(move || exchange(address, request))
                .await
                .expect("joins");
            assert!(answer.contains(expected), "{request:?}: {answer}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stopping_closes_a_connection_idle_on_the_front() {
        let (address, stop, server) = start(Protocol::Http1).await;
        let client = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(address).expect("connects");
            stream
                .write_all(b"GET /fast HTTP/1.1\r\nhost: a\r\n\r\n")
                .expect("sends");
            let mut first = [0_u8; 15];
            stream.read_exact(&mut first).expect("an answer");
            stream
        });
        let mut stream = client.await.expect("joins");
        stop.send(()).expect("the server listens for stop");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns once the idle connection closed")
            .expect("joins");
        let rest = tokio::task::spawn_blocking(move || {
            let mut rest = String::new();
            stream.read_to_string(&mut rest).map(|_| rest)
        })
        .await
        .expect("joins")
        .expect("reads to the end");
        assert!(
            rest.ends_with("front"),
            "the first answer, then the end: {rest}"
        );
    }

    #[test]
    fn the_protocol_setting_names_its_choices() {
        assert_eq!("http1".parse(), Ok(Protocol::Http1));
        assert_eq!("auto".parse(), Ok(Protocol::Auto));
        let e = "h2".parse::<Protocol>().expect_err("refused");
        assert!(e.contains("http1") && e.contains("auto"), "{e}");
    }
}
