//! The public listener's connection loop. By default every connection is HTTP/1.1 through
//! hyper's HTTP/1 connection directly: no auto builder reading the first bytes to tell
//! HTTP/1 from HTTP/2 (the edge and the ingress speak HTTP/1.1 to the origin). With
//! `SURGE_PUBLIC_HTTP=auto` the auto builder serves HTTP/1.1 and cleartext HTTP/2 (h2c) side
//! by side, for meshes that speak HTTP/2 to the pod.
//!
//! Each accepted socket gets `TCP_NODELAY` (a response leaves as one `writev` of the header
//! block and the body, which Nagle's algorithm would otherwise hold back behind the previous
//! segment's ACK), keep-alive, and a 30 s limit on reading a request's header block. When
//! `stop` completes, the loop stops accepting, every connection finishes the request it is
//! serving and closes, and `serve` returns once all have.

use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a client may take to send a request's header block.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after an accept error that is not about one connection (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The protocols the public listener speaks (`SURGE_PUBLIC_HTTP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 only, without sniffing (`http1`, the default).
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

/// Serves `router` on `listener` until `stop` completes and every connection has closed.
/// Handlers see the peer address as [`ConnectInfo`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    protocol: Protocol,
    stop: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
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
        let io = TokioIo::new(stream);
        let router = router.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        match protocol {
            Protocol::Http1 => {
                let connection = graceful.watch(http1.serve_connection(io, service));
                tokio::spawn(connection);
            }
            Protocol::Auto => {
                let connection = graceful.watch(both.serve_connection(io, service).into_owned());
                tokio::spawn(connection);
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
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

    use axum::routing::get;

    use super::*;

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
                );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, protocol, async {
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

    #[test]
    fn the_protocol_setting_names_its_choices() {
        assert_eq!("http1".parse(), Ok(Protocol::Http1));
        assert_eq!("auto".parse(), Ok(Protocol::Auto));
        let e = "h2".parse::<Protocol>().expect_err("refused");
        assert!(e.contains("http1") && e.contains("auto"), "{e}");
    }
}
