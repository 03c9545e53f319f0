//! Arbitrary input to everything a gate reads from outside: pass text (raw, and valid passes
//! with bytes flipped so the signature and claim checks are reached) and revocation deltas.
//! Nothing may panic, and base45 must stay canonical.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use parq_core::jiff::{SignedDuration, Timestamp};
use parq_core::pass::{
    Entitlement, GatePolicy, GateVerifier, KeyId, KeySeed, PassKeyring, ReentryPolicy, RevocationDelta, Scan,
    base45,
};
use parq_core::{LotId, ReservationId, SpotId, Window};

struct Fixture {
    ring: PassKeyring,
    lot: LotId,
    pass: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ring = PassKeyring::new(KeyId(1), KeySeed::from_bytes([1; 32]));
        let lot = LotId::new();
        let window = Window::new(
            Timestamp::from_second(1_900_000_000).unwrap(),
            Timestamp::from_second(1_900_007_200).unwrap(),
        )
        .unwrap();
        let ent = Entitlement { reservation: ReservationId::new(), lot, spot: SpotId::new(), window };
        let pass = base45::decode(ring.issue(ent).unwrap().text()).unwrap();
        Fixture { ring, lot, pass }
    })
}

fn scan_everywhere(f: &Fixture, text: &str) {
    let gate = GateVerifier::new(
        f.ring.public_keys(),
        GatePolicy { grace: SignedDuration::from_mins(15), reentry: ReentryPolicy::Allowed },
    );
    for at in [1_899_999_000, 1_900_000_100, i64::from(u32::MAX)] {
        let at = Timestamp::from_second(at).unwrap();
        let _ = gate.scan(text, &Scan::entry(f.lot, at));
        let _ = gate.scan(text, &Scan::exit(f.lot, at));
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        // Raw text.
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(bytes) = base45::decode(text) {
                    assert_eq!(base45::encode(&bytes), text, "base45 decoding must be canonical");
                }
                let _ = f.ring.public_keys().verify(text);
                scan_everywhere(f, text);
            }
            assert_eq!(base45::decode(&base45::encode(rest)).unwrap(), rest);
        }
        // A genuine pass with the input XORed over it (and possibly cut or extended).
        1 => {
            let mut bytes = f.pass.clone();
            for (b, x) in bytes.iter_mut().zip(rest) {
                *b ^= x;
            }
            if rest.len() > bytes.len() {
                bytes.extend_from_slice(&rest[bytes.len()..]);
            } else if let Some(&cut) = rest.first() {
                bytes.truncate(bytes.len().saturating_sub(usize::from(cut % 4)));
            }
            let text = base45::encode(&bytes);
            let verified = f.ring.public_keys().verify(&text);
            if bytes != f.pass {
                assert!(verified.is_err(), "an altered pass verified");
            }
            scan_everywhere(f, &text);
        }
        // A revocation delta from the network.
        _ => {
            if let Ok(delta) = serde_json::from_slice::<RevocationDelta>(rest) {
                let gate = GateVerifier::new(
                    f.ring.public_keys(),
                    GatePolicy { grace: SignedDuration::ZERO, reentry: ReentryPolicy::NotAllowed },
                );
                let before = gate.revocation_version();
                if gate.apply_revocations(&delta).is_err() {
                    assert_eq!(gate.revocation_version(), before, "a refused delta changed the gate");
                }
                let _ = gate.apply_revocations(&delta);
            }
        }
    }
});
