//! HTTP/1.1 bytes as the connection front sends them: the status line and header lines,
//! written straight into an output buffer.

use axum::http::StatusCode;

/// Appends the status line of `status` (`HTTP/1.1 200 OK\r\n`) to `out`.
pub fn push_status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends the header line `name: value\r\n` to `out`.
pub fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_as_sent() {
        let mut out = Vec::new();
        push_status_line(&mut out, StatusCode::NOT_MODIFIED);
        push_header(&mut out, "etag", b"\"v1\"");
        assert_eq!(out, b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\n");
    }
}
