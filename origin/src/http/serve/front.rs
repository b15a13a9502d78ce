//! The connection front: reads each request on an HTTP/1.1 connection itself (`httparse`,
//! in place) and lets a [`Shortcut`] answer a `GET` from bytes it already holds, with no
//! header map; the answer leaves as one `writev` of the status line, the header block and the
//! body. What the shortcut passes on, and every other request with plain framing (no body or
//! a `Content-Length` one of at most 64 KiB), the front hands to the router as an `http`
//! request and writes the router's answer itself, so the connection stays on the front. A
//! request it does not frame itself — chunked, an upgrade, `Expect`, `Connection` other than
//! keep-alive, HEAD and other methods, HTTP/1.0, a target outside RFC 3986's characters, a
//! head that is malformed or over 16 KiB, a larger body — hands the connection, with every
//! byte read and not answered, to hyper for the rest of its life.
//!
//! What the front keeps of hyper's behaviour: a client has 30 s from the end of the previous
//! answer to send a complete request (idle or slow, the connection is closed then); answers
//! carry `date` and `content-length` (none on 1xx, 204, 304); pipelined requests are answered
//! in order; a stopping server closes an idle connection, answers the request it holds with
//! `connection: close` and closes (the pipelined requests behind it go unanswered, as hyper
//! leaves them), and lets hyper finish a request being read. The router's answers are sent as
//! whole bodies (the public routes stream none).

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::CONNECTION;
use axum::http::{Extensions, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::http::wire;

/// Most headers a request answered by the front may have (more go to hyper, which allows 100).
pub const MAX_HEADERS: usize = 64;
/// Largest request head the front reads (a larger one goes to hyper with its own limits).
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body the front reads (a larger one goes to hyper, and the router's limits
/// answer it).
const MAX_BODY: usize = 64 * 1024;
/// Room made in the read buffer before each read.
const READ_ROOM: usize = 4096;

/// A plain `GET` request, as the front read it.
pub struct Head<'a> {
    /// The request target: path and query, starting with `/`.
    pub target: &'a str,
    /// The headers, in the order they came.
    pub headers: &'a [httparse::Header<'a>],
}

/// What a [`Shortcut`] made of a request.
pub enum Answer {
    /// The status line and header lines are written; the front adds `content-length` (unless
    /// there is no body, as for a 304), `date` and the blank line, then sends the body.
    Sent(Option<Bytes>),
    /// The router answers it, with these extensions on the request.
    Pass(Extensions),
}

/// Answers requests from the connection, before hyper.
pub trait Shortcut: Send + Sync + 'static {
    /// Writes the answer to `head` into `out` (empty when called), or passes it on.
    fn answer<'a>(
        &'a self,
        head: &'a Head<'a>,
        out: &'a mut Vec<u8>,
    ) -> impl Future<Output = Answer> + Send + 'a;
}

/// The server's request that a connection stop: given once, then stays given.
pub(super) struct Stop(Option<oneshot::Receiver<()>>);

impl Stop {
    /// Stopped when `receiver` gets a value or its sender goes away.
    pub(super) fn new(receiver: oneshot::Receiver<()>) -> Self {
        Self(Some(receiver))
    }

    /// Completes once the server asks the connection to stop.
    pub(super) async fn requested(&mut self) {
        if let Some(receiver) = &mut self.0 {
            let _ = receiver.await;
            self.0 = None;
        }
    }

    /// Whether the server has asked the connection to stop, without waiting.
    pub(super) fn given(&mut self) -> bool {
        let given = self.0.as_mut().is_none_or(|receiver| {
            !matches!(
                receiver.try_recv(),
                Err(oneshot::error::TryRecvError::Empty)
            )
        });
        if given {
            self.0 = None;
        }
        given
    }
}

/// How the front left a connection.
pub(super) enum Outcome {
    /// Closed: the client left or failed to send a head in time, a write failed, or the
    /// server stopped while the connection was idle.
    Closed,
    /// hyper serves the rest.
    HandOff {
        /// The bytes read and not answered, which hyper reads first.
        read: Bytes,
        /// Whether the server is stopping already.
        stopping: bool,
    },
}

/// The connection being served: its socket, its peer, and the router behind the shortcut.
pub(super) struct Conn<'a> {
    /// The socket.
    pub stream: &'a mut TcpStream,
    /// The peer, for the router's `ConnectInfo`.
    pub peer: SocketAddr,
    /// What answers the requests the shortcut passes on.
    pub router: &'a Router,
}

/// Serves `conn` until it closes or goes to hyper; `timeout` bounds the wait for each
/// request.
pub(super) async fn run<S: Shortcut>(
    conn: Conn<'_>,
    shortcut: &S,
    stop: &mut Stop,
    timeout: Duration,
) -> Outcome {
    let Conn {
        stream,
        peer,
        router,
    } = conn;
    let mut buf = BytesMut::with_capacity(READ_ROOM);
    let mut out = Vec::with_capacity(1024);
    let mut idle_since = Instant::now();
    let deadline = tokio::time::sleep_until(idle_since + timeout);
    tokio::pin!(deadline);
    loop {
        while !buf.is_empty() {
            // Left uninitialised: httparse writes the headers it finds (no 2 KiB to zero).
            let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut request = httparse::Request::new(&mut []);
            let head_len = match request.parse_with_uninit_headers(&buf, &mut slots) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => break,
                _ => return hand_off(buf, false),
            };
            let Some(framed) = framed(&request) else {
                return hand_off(buf, false);
            };
            let end = head_len + framed.body_len;
            if buf.len() < end {
                break;
            }
            // A stopping server answers this request, with `connection: close`, and no more.
            let closing = stop.given();
            out.clear();
            let carry = if framed.method == Method::GET && framed.body_len == 0 {
                let head = Head {
                    target: framed.target,
                    headers: request.headers,
                };
                match shortcut.answer(&head, &mut out).await {
                    Answer::Sent(body) => {
                        frame(&mut out, body.as_ref().map(Bytes::len), closing);
                        if send(stream, &out, body.as_deref().unwrap_or_default())
                            .await
                            .is_err()
                            || closing
                        {
                            return Outcome::Closed;
                        }
                        buf.advance(end);
                        idle_since = Instant::now();
                        continue;
                    }
                    Answer::Pass(carry) => carry,
                }
            } else {
                Extensions::new()
            };
            let Some(mut routed) = routed(&framed, request.headers, &buf[head_len..end]) else {
                return hand_off(buf, false);
            };
            routed.extensions_mut().insert(ConnectInfo(peer));
            routed.extensions_mut().extend(carry);
            buf.advance(end);
            let Ok(response) = router.clone().oneshot(routed).await;
            out.clear();
            let Some((body, close)) = write_head(response, &mut out, closing).await else {
                return Outcome::Closed;
            };
            if send(stream, &out, &body).await.is_err() || close {
                return Outcome::Closed;
            }
            idle_since = Instant::now();
        }
        buf.reserve(READ_ROOM);
        tokio::select! {
            biased;
            read = stream.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(_) => {}
            },
            () = &mut deadline => {
                let due = idle_since + timeout;
                if Instant::now() >= due {
                    return Outcome::Closed;
                }
                deadline.as_mut().reset(due);
            }
            () = stop.requested() => {
                if buf.is_empty() {
                    return Outcome::Closed;
                }
                return hand_off(buf, true);
            }
        }
    }
}

fn hand_off(read: BytesMut, stopping: bool) -> Outcome {
    Outcome::HandOff {
        read: read.freeze(),
        stopping,
    }
}

/// A request the front serves itself, as far as its framing goes.
struct Framed<'a> {
    method: Method,
    target: &'a str,
    body_len: usize,
}

/// `request`'s framing when the front may serve it: `GET`, `POST`, `PUT`, `PATCH` or
/// `DELETE`, HTTP/1.1, an origin-form target of RFC 3986 characters, no body or one
/// `Content-Length` of at most [`MAX_BODY`], and nothing that changes the connection.
fn framed<'a>(request: &'a httparse::Request<'_, 'a>) -> Option<Framed<'a>> {
    let method = match request.method? {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        _ => return None,
    };
    if request.version? != 1 {
        return None;
    }
    let target = request.path?;
    if !target.starts_with('/') || !target.bytes().all(is_target_byte) {
        return None;
    }
    let mut body_len = None;
    for header in request.headers.iter() {
        let name = header.name;
        let plain = if name.eq_ignore_ascii_case("content-length") {
            let first = body_len.is_none();
            body_len = std::str::from_utf8(header.value)
                .ok()
                .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|text| text.parse::<usize>().ok())
                .filter(|len| *len <= MAX_BODY);
            first && body_len.is_some()
        } else if name.eq_ignore_ascii_case("connection") {
            header.value.eq_ignore_ascii_case(b"keep-alive")
        } else {
            !["transfer-encoding", "upgrade", "expect"]
                .iter()
                .any(|other| name.eq_ignore_ascii_case(other))
        };
        if !plain {
            return None;
        }
    }
    Some(Framed {
        method,
        target,
        body_len: body_len.unwrap_or(0),
    })
}

/// The router's request for `framed` with `headers` and `body`; `None` when a header or the
/// target is not one `http` takes (hyper answers those).
fn routed(framed: &Framed<'_>, headers: &[httparse::Header<'_>], body: &[u8]) -> Option<Request> {
    let mut request = Request::new(Body::from(Bytes::copy_from_slice(body)));
    *request.method_mut() = framed.method.clone();
    *request.uri_mut() = framed.target.parse().ok()?;
    let map = request.headers_mut();
    map.reserve(headers.len());
    for header in headers {
        map.append(
            HeaderName::from_bytes(header.name.as_bytes()).ok()?,
            HeaderValue::from_bytes(header.value).ok()?,
        );
    }
    Some(request)
}

/// Writes the status line and headers of `response` into `out`, framed by the body's length
/// (none for 1xx, 204 and 304), and returns the body and whether the connection closes after
/// it; `None` when the body fails.
async fn write_head(response: Response, out: &mut Vec<u8>, closing: bool) -> Option<(Bytes, bool)> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    let status = parts.status;
    wire::push_status_line(out, status);
    let mut close = false;
    for (name, value) in &parts.headers {
        if matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "date"
        ) {
            continue;
        }
        close |= name == CONNECTION && value.as_bytes().eq_ignore_ascii_case(b"close");
        wire::push_header(out, name.as_str(), value.as_bytes());
    }
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    frame(out, (!bodiless).then_some(body.len()), closing && !close);
    Some((if bodiless { Bytes::new() } else { body }, close || closing))
}

/// RFC 3986's characters for a path and query: unreserved, sub-delims, `:`, `@`, `/`, `?`
/// and `%`.
fn is_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

/// Ends the head in `out`: `content-length` for a body, `date`, the blank line.
fn frame(out: &mut Vec<u8>, body_len: Option<usize>, close: bool) {
    use std::io::Write as _;
    if let Some(len) = body_len {
        let _ = write!(out, "content-length: {len}\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"date: ");
    push_date(out);
    out.extend_from_slice(b"\r\n\r\n");
}

thread_local! {
    /// The `date` value of the current second (an IMF-fixdate is 29 bytes).
    static DATE: std::cell::RefCell<(u64, [u8; 29])> = const { std::cell::RefCell::new((0, [0; 29])) };
}

/// Appends the current time as an HTTP date, formatted once a second per thread.
fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != second {
            let formatted = httpdate::fmt_http_date(now);
            if formatted.len() == text.len() {
                text.copy_from_slice(formatted.as_bytes());
                *at = second;
            }
        }
        out.extend_from_slice(text);
    });
}

/// Writes `head` then `body`, in one `writev` when the socket takes it all.
async fn send(stream: &mut TcpStream, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let mut slices = [IoSlice::new(head), IoSlice::new(body)];
    let mut pending = &mut slices[..];
    let mut left = head.len() + body.len();
    while left > 0 {
        let n = stream.write_vectored(pending).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        left -= n;
        IoSlice::advance_slices(&mut pending, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// Answers every plain GET with `ok`.
    struct Ok200;

    impl Shortcut for Ok200 {
        async fn answer<'a>(&'a self, _: &'a Head<'a>, out: &'a mut Vec<u8>) -> Answer {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            Answer::Sent(Some(Bytes::from_static(b"ok")))
        }
    }

    fn conn<'a>(stream: &'a mut TcpStream, router: &'a Router) -> Conn<'a> {
        Conn {
            peer: stream.peer_addr().expect("peer"),
            stream,
            router,
        }
    }

    /// A connected pair, the client's end having sent `sent`: the client's end and the
    /// server's.
    async fn pair(sent: &[u8]) -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let mut client = TcpStream::connect(listener.local_addr().expect("address"))
            .await
            .expect("connects");
        let (server, _) = listener.accept().await.expect("accepts");
        client.write_all(sent).await.expect("sends");
        (client, server)
    }

    #[tokio::test]
    async fn a_head_not_complete_in_time_and_an_idle_connection_are_closed() {
        let router = Router::new();
        let timeout = Duration::from_millis(200);
        let (_tell, told) = oneshot::channel();
        let mut stop = Stop::new(told);
        let (_client, mut server) = pair(b"GET / HTTP/1.1\r\nhost").await;
        let outcome = run(conn(&mut server, &router), &Ok200, &mut stop, timeout).await;
        assert!(matches!(outcome, Outcome::Closed), "a slow head");

        let (mut client, mut server) = pair(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
        let outcome = run(conn(&mut server, &router), &Ok200, &mut stop, timeout).await;
        assert!(matches!(outcome, Outcome::Closed), "idle after an answer");
        drop(server);
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.expect("reads");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\nok"));
    }

    #[tokio::test]
    async fn stopping_with_a_head_half_read_leaves_it_to_hyper() {
        let (tell, told) = oneshot::channel();
        let mut stop = Stop::new(told);
        let (_client, mut server) = pair(b"GET / HTTP/1.1\r\nho").await;
        let served = tokio::spawn(async move {
            let router = Router::new();
            let conn = conn(&mut server, &router);
            let outcome = run(conn, &Ok200, &mut stop, Duration::from_secs(30)).await;
            (outcome, stop)
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        tell.send(()).expect("the connection listens");
        let (outcome, mut stop) = served.await.expect("joins");
        let Outcome::HandOff { read, stopping, .. } = outcome else {
            panic!("handed off");
        };
        assert!(stopping);
        assert_eq!(read.as_ref(), b"GET / HTTP/1.1\r\nho");
        tokio::time::timeout(Duration::from_secs(1), stop.requested())
            .await
            .expect("a stop once given stays given");
    }

    #[tokio::test]
    async fn a_stopping_server_answers_the_request_it_holds_with_close_and_no_more() {
        let router = Router::new().route("/vote", axum::routing::post(|| async { "counted" }));
        for (first, answered) in [
            ("GET / HTTP/1.1\r\nhost: a\r\n\r\n", "\r\n\r\nok"),
            (
                "POST /vote HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\n\r\n1",
                "\r\n\r\ncounted",
            ),
        ] {
            let (tell, told) = oneshot::channel();
            let mut stop = Stop::new(told);
            assert!(!stop.given(), "not asked yet");
            tell.send(()).expect("the connection listens");
            let pipelined = format!("{first}GET /second HTTP/1.1\r\nhost: a\r\n\r\n");
            let (mut client, mut server) = pair(pipelined.as_bytes()).await;
            let outcome = run(
                conn(&mut server, &router),
                &Ok200,
                &mut stop,
                Duration::from_secs(30),
            )
            .await;
            assert!(
                matches!(outcome, Outcome::Closed),
                "closed after one answer"
            );
            drop(server);
            let mut answer = String::new();
            client.read_to_string(&mut answer).await.expect("reads");
            assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
            assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
            assert!(answer.ends_with(answered), "{answer}");
            assert!(stop.given(), "a stop once given stays given");
        }
    }

    fn parsed<'h, 'b>(
        text: &'b [u8],
        slots: &'h mut [httparse::Header<'b>],
    ) -> httparse::Request<'h, 'b> {
        let mut request = httparse::Request::new(slots);
        assert!(request.parse(text).expect("parses").is_complete());
        request
    }

    #[test]
    fn the_front_frames_plain_requests_itself_and_leaves_the_rest_to_hyper() {
        let framed_here = [
            ("GET /elections/1?x=%20 HTTP/1.1\r\nHost: a\r\n\r\n", 0),
            (
                "GET / HTTP/1.1\r\nconnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n",
                0,
            ),
            ("POST /api/login HTTP/1.1\r\ncontent-length: 2\r\n\r\n", 2),
            (
                "DELETE /x HTTP/1.1\r\nContent-Length: 65536\r\n\r\n",
                65_536,
            ),
        ];
        for (text, body_len) in framed_here {
            let mut slots = [httparse::EMPTY_HEADER; 8];
            let request = parsed(text.as_bytes(), &mut slots);
            let framed = framed(&request).unwrap_or_else(|| panic!("framed: {text:?}"));
            assert_eq!(framed.body_len, body_len, "{text:?}");
        }
        let not = [
            "HEAD / HTTP/1.1\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\n\r\n",
            "GET /a\"b HTTP/1.1\r\n\r\n",
            "GET /a{b} HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "POST / HTTP/1.1\r\nExpect: 100-continue\r\ncontent-length: 1\r\n\r\n",
        ];
        for text in not {
            let mut slots = [httparse::EMPTY_HEADER; 8];
            let request = parsed(text.as_bytes(), &mut slots);
            assert!(framed(&request).is_none(), "{text:?}");
        }
    }

    #[test]
    fn the_head_ends_with_its_length_the_date_and_a_blank_line() {
        let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
        frame(&mut out, Some(1467), false);
        let text = String::from_utf8(out).expect("ascii");
        let date = text
            .split("date: ")
            .nth(1)
            .and_then(|rest| rest.strip_suffix("\r\n\r\n"))
            .expect("a date line last");
        assert!(text.contains("\r\ncontent-length: 1467\r\n"), "{text}");
        let parsed = httpdate::parse_http_date(date).expect("an HTTP date");
        let off = SystemTime::now()
            .duration_since(parsed)
            .unwrap_or_default()
            .as_secs();
        assert!(off <= 2, "{date}");
        assert!(!text.contains("connection"), "{text}");
        let mut out = Vec::new();
        frame(&mut out, None, true);
        let text = String::from_utf8(out).expect("ascii");
        assert!(!text.contains("content-length"), "{text}");
        assert!(text.starts_with("connection: close\r\ndate: "), "{text}");
    }
}
