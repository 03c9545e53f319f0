//! HTTP helpers every layer may use: the W3C trace context of the request being handled, the
//! client's address, and the largest body a request may have.

use std::net::IpAddr;

use axum::extract::Request;

use crate::accounts::secret;

/// The largest body a request may have.
pub const MAX_BODY: usize = 256 * 1024;

tokio::task_local! {
    /// The trace id of the request being handled, for problem bodies.
    pub static TRACE_ID: String;
}

/// The trace id of the current request, if any.
pub fn current_trace_id() -> Option<String> {
    TRACE_ID.try_with(Clone::clone).ok()
}

/// A W3C trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 hex digits.
    pub trace_id: String,
    /// This server's span, 16 hex digits.
    pub span_id: String,
    /// Trace flags.
    pub flags: String,
}

impl TraceContext {
    /// Continues the trace of a valid `traceparent`, or starts a new one.
    pub fn from_header(value: Option<&str>) -> Self {
        // Ids need to be unique, not secret: a random UUID from the thread's generator costs no
        // system call (a trace id keeps its 122 random bits, a span id 60).
        let span_id = secret::hex(&uuid::Uuid::new_v4().as_bytes()[..8]);
        if let Some((trace_id, flags)) = value.and_then(parse_traceparent) {
            return Self { trace_id, span_id, flags };
        }
        Self { trace_id: secret::hex(uuid::Uuid::new_v4().as_bytes()), span_id, flags: "01".into() }
    }

    /// The `traceparent` header value naming this server's span.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

fn parse_traceparent(v: &str) -> Option<(String, String)> {
    let mut it = v.trim().split('-');
    let (version, trace, parent, flags) = (it.next()?, it.next()?, it.next()?, it.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || it.next().is_none())
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    valid.then(|| (trace.to_owned(), flags.to_owned()))
}

/// The client's address: what the outermost middleware found (the peer, or the client a
/// trusted proxy names; see [`crate::clientaddr`]), else the peer.
pub fn client_ip(req: &Request) -> IpAddr {
    match req.extensions().get::<crate::clientaddr::ClientAddr>() {
        Some(c) => c.0,
        None => crate::clientaddr::peer(req.extensions()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_continued_when_valid_and_made_otherwise() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = TraceContext::from_header(Some(tp));
        assert_eq!(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(c.span_id, "00f067aa0ba902b7");
        assert!(c.header().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let c = TraceContext::from_header(Some(bad));
            assert_ne!(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
            assert_eq!(c.trace_id.len(), 32);
        }
    }
}
