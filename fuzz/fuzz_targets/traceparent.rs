//! The W3C `traceparent` header a request brings: a valid one is continued (same trace id
//! and flags, this server's span), in the canonical lower-case form; anything else starts a
//! fresh trace. The target's own reading of the W3C rules decides which is which.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parq_server::http::TraceContext;

fn lower_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `(trace id, flags)` of a valid `traceparent` (W3C Trace Context, level 1: version 00 has
/// exactly four fields; a later version may add fields after a `-`; ff is invalid; ids are
/// not all zeros).
fn reference(v: &str) -> Option<(&str, &str)> {
    let v = v.trim();
    let fields: Vec<&str> = v.split('-').collect();
    if fields.len() < 4 {
        return None;
    }
    let (version, trace, parent, flags) = (fields[0], fields[1], fields[2], fields[3]);
    let ok = lower_hex(version, 2)
        && version != "ff"
        && (version != "00" || fields.len() == 4)
        && lower_hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && lower_hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && lower_hex(flags, 2);
    ok.then_some((trace, flags))
}

fn canonical(c: &TraceContext) {
    let h = c.header();
    assert!(reference(&h).is_some(), "{h:?} is not a valid traceparent");
    assert_eq!(h, format!("00-{}-{}-{}", c.trace_id, c.span_id, c.flags));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let a = TraceContext::from_header(Some(text));
    let b = TraceContext::from_header(Some(text));
    canonical(&a);
    canonical(&b);
    // A fresh trace id is random: the same id twice means the header's was continued.
    let continued = a.trace_id == b.trace_id;
    match reference(text) {
        Some((trace, flags)) => {
            assert!(continued, "{text:?} is valid but was not continued");
            assert_eq!((a.trace_id.as_str(), a.flags.as_str()), (trace, flags));
            // Our header is continued in turn, as it is.
            let next = TraceContext::from_header(Some(&a.header()));
            assert_eq!((&next.trace_id, &next.flags), (&a.trace_id, &a.flags));
            if text.trim().starts_with("00-") {
                let (head, _) = text.trim().rsplit_once('-').unwrap();
                let (version_trace, _) = head.rsplit_once('-').unwrap();
                assert_eq!(a.header(), format!("{version_trace}-{}-{flags}", a.span_id));
            }
        }
        None => {
            assert!(!continued, "{text:?} is invalid but was continued");
            assert_eq!(a.flags, "01");
        }
    }
    assert_ne!(a.span_id, b.span_id);
});
