//! Webhook deliveries as a payment provider's endpoint receives them: Stripe's
//! (`parq_payments::webhook`) and the test gateway's (`TestGateway::parse_webhook`).
//!
//! The first byte chooses how the rest is used:
//! * raw: `header \n body`, both from the input;
//! * signed: an 8-byte timestamp, then a body the target signs correctly at that timestamp:
//!   inside the tolerance it is read (or refused as a bad payload, never as a bad signature),
//!   outside it is refused as a bad signature; an event the test gateway reads signs and reads
//!   back equal;
//! * altered: a 2-byte position and a 1-byte mask, then a body signed now: the byte at the
//!   position (in the header, then the body) is XORed with the mask, and the delivery must be
//!   refused by both.

#![no_main]

use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use parq_core::jiff::Timestamp;
use parq_core::memory::TestGateway;
use parq_core::{Error, PaymentGateway};
use parq_payments::webhook;
use sha2::Sha256;

const SECRET: &[u8] = b"whsec_fuzz";
const NOW: i64 = 1_800_000_000;
const TOLERANCE: i128 = 300;

/// The `Stripe-Signature` / test gateway header of `body` signed at `t` (both schemes are
/// HMAC-SHA256 over `"{t}.{body}"`, in lower-case hex).
fn header(body: &[u8], t: i64) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn field(e: &Error) -> &'static str {
    match e {
        Error::Invalid { field, .. } => field,
        other => panic!("a webhook is refused with Error::Invalid, not {other:?}"),
    }
}

/// Both parsers on one delivery: (Stripe's signature check, Stripe's parse, the test gateway's).
fn deliver(
    gw: &TestGateway,
    body: &[u8],
    header: &str,
) -> (
    parq_core::Result<()>,
    parq_core::Result<parq_core::PaymentEvent>,
    parq_core::Result<parq_core::PaymentEvent>,
) {
    let now = Timestamp::from_second(NOW).unwrap();
    let verified = webhook::verify_signature(body, header, SECRET, now);
    let stripe = webhook::parse(body, header, SECRET, now);
    let test = gw.parse_webhook(body, header, now);
    if let Err(e) = &verified {
        assert_eq!(field(e), "signature");
        assert!(stripe.is_err(), "Stripe's parse accepted a delivery whose signature is refused");
    }
    if let Err(e) = &stripe {
        let f = field(e);
        assert!(["signature", "payload", webhook::IGNORED_EVENT].contains(&f), "field {f}");
        assert_eq!(f == "signature", verified.is_err(), "signature errors come from the signature check");
    }
    if let Err(e) = &test {
        let f = field(e);
        assert!(["signature", "payload", webhook::IGNORED_EVENT].contains(&f), "field {f}");
    }
    (verified, stripe, test)
}

fuzz_target!(|data: &[u8]| {
    let gw = TestGateway::new(SECRET);
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            let (head, body) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            if let Ok(head) = std::str::from_utf8(head) {
                let _ = deliver(&gw, body, head);
            }
        }
        1 => {
            let Some((t, body)) = rest.split_first_chunk::<8>() else { return };
            let t = i64::from_le_bytes(*t);
            let within = (i128::from(NOW) - i128::from(t)).abs() <= TOLERANCE;
            let (verified, stripe, test) = deliver(&gw, body, &header(body, t));
            if within {
                assert!(verified.is_ok(), "a correctly signed delivery at t={t} was refused: {verified:?}");
                if let Err(e) = &stripe {
                    assert_ne!(field(e), "signature");
                }
                match &test {
                    Ok(event) => {
                        let (body2, header2) = gw.sign(event, Timestamp::from_second(NOW).unwrap());
                        let again = deliver(&gw, &body2, &header2).2;
                        assert_eq!(
                            again.as_ref().ok(),
                            Some(event),
                            "a signed event did not read back equal"
                        );
                    }
                    Err(e) => assert!(["payload", webhook::IGNORED_EVENT].contains(&field(e))),
                }
            } else {
                assert!(
                    verified.is_err() && stripe.is_err() && test.is_err(),
                    "t={t} is outside the tolerance"
                );
            }
        }
        _ => {
            let Some((pm, body)) = rest.split_first_chunk::<3>() else { return };
            let pos = usize::from(u16::from_le_bytes([pm[0], pm[1]]));
            let mask = if pm[2] == 0 { 1 } else { pm[2] };
            let mut head = header(body, NOW).into_bytes();
            let mut body = body.to_vec();
            let at = pos % (head.len() + body.len());
            if at < head.len() {
                head[at] ^= mask;
            } else {
                body[at - head.len()] ^= mask;
            }
            // A header that is not text never reaches the parsers (HTTP refuses it first).
            let Ok(head) = std::str::from_utf8(&head) else { return };
            let (verified, stripe, test) = deliver(&gw, &body, head);
            assert!(verified.is_err(), "Stripe's check accepted an altered delivery: {head}");
            assert!(stripe.is_err(), "Stripe's parse accepted an altered delivery: {head}");
            assert!(test.is_err(), "the test gateway accepted an altered delivery: {head}");
        }
    }
});
