//! Access passes and the gate rules: a pass opens the right gate, at the right time, once —
//! with or without a network.
//!
//! # The pass
//! A pass is a compact binary token signed with Ed25519 and written in base45
//! ([RFC 9285](https://www.rfc-editor.org/rfc/rfc9285)), so it uses only the characters of a
//! QR code's alphanumeric mode and the code stays small. Version 1 is 149 bytes, 224
//! characters of text:
//!
//! | offset | bytes | field                                                              |
//! |-------:|------:|--------------------------------------------------------------------|
//! |      0 |     1 | format version, `1`                                                |
//! |      1 |     4 | key id (big-endian `u32`), see [`KeyId`]                           |
//! |      5 |    16 | reservation id (UUID bytes)                                        |
//! |     21 |    16 | lot id                                                             |
//! |     37 |    16 | spot id                                                            |
//! |     53 |     8 | window start, whole seconds since the Unix epoch (big-endian `i64`) |
//! |     61 |     8 | window end (exclusive), same encoding                              |
//! |     69 |    16 | random nonce, distinct for every pass issued                       |
//! |     85 |    64 | Ed25519 signature over `"ParQ pass v1\0"` followed by bytes 0..85   |
//!
//! Windows of a pass are whole seconds: [`PassKeyring::issue`] refuses a window with a
//! fraction of a second rather than silently widening or narrowing it.
//!
//! # Verifying and deciding
//! [`PublicKeys::verify`] checks a pass's text and signature and returns its [`PassClaims`].
//! One rules engine, [`decide`], then says whether a [`Scan`] at a gate is allowed, with a
//! typed [`Refusal`] when it is not. The offline [`GateVerifier`] calls it with its own
//! revocation list and presence memory; the online engine calls it with the reservation's
//! state and the sessions from its store. A licence plate ([`normalize_plate`]) is an
//! alternative credential: whoever resolves it to a reservation builds the same
//! [`Entitlement`] and calls the same [`decide`].
//!
//! # Revocation
//! Cancelled or replaced passes go into a versioned [`RevocationList`]; gates fetch only what
//! they lack with [`RevocationList::since`] and apply it with [`RevocationList::apply`].
//!
//! # Example
//! ```
//! use parq_core::jiff::{SignedDuration, Timestamp};
//! use parq_core::pass::{Decision, Entitlement, GatePolicy, GateVerifier, KeyId, PassKeyring};
//! use parq_core::pass::{ReentryPolicy, Refusal, Scan};
//! use parq_core::{LotId, ReservationId, SpotId, Window};
//!
//! # fn main() -> parq_core::Result<()> {
//! let start: Timestamp = "2030-05-01T09:00:00Z".parse().unwrap();
//! let window = Window::starting_at(start, SignedDuration::from_hours(2))?;
//! let lot = LotId::new();
//! let entitlement = Entitlement { reservation: ReservationId::new(), lot, spot: SpotId::new(), window };
//!
//! // The issuer signs; the text goes into the driver's QR code.
//! let keys = PassKeyring::generate(KeyId(1))?;
//! let pass = keys.issue(entitlement)?;
//!
//! // The gate needs only the public keys.
//! let policy = GatePolicy { grace: SignedDuration::from_mins(15), reentry: ReentryPolicy::NotAllowed };
//! let gate = GateVerifier::new(keys.public_keys(), policy);
//! let at = start + SignedDuration::from_mins(5);
//! assert_eq!(gate.scan(pass.text(), &Scan::entry(lot, at)), Decision::Allow);
//! assert_eq!(gate.scan(pass.text(), &Scan::entry(lot, at)), Decision::Refuse(Refusal::AlreadyInside));
//! # Ok(())
//! # }
//! ```

pub mod base45;
mod gate;
mod keys;
mod plate;
#[cfg(feature = "qr")]
pub mod qr;
mod revocation;
mod rules;
mod upload;

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::base45::Base45Error;
pub use self::gate::{GatePolicy, GateState, GateVerifier};
pub use self::keys::{
    KeyId, KeySeed, KeyringConfig, PassKeyring, PublicKey, PublicKeyEntry, PublicKeys, SigningKeyEntry,
};
pub use self::plate::{MAX_PLATE_LEN, normalize_plate};
pub use self::revocation::{Revocation, RevocationDelta, RevocationList, RevocationReason};
pub use self::rules::{
    Decision, Direction, Presence, ReentryPolicy, Refusal, Scan, ScanContext, ScanId, decide,
};
pub use self::upload::{MAX_SCAN_ID_LEN, OfflineScan, ScanConflict, ScanRecord};
use crate::error::{Error, Result};
use crate::ids::{LotId, ReservationId, SpotId};
use crate::reservation::Reservation;
use crate::time::Window;

/// The pass format this version writes and reads.
pub const PASS_VERSION: u8 = 1;
/// Length of a version-1 pass in bytes (signed part and signature).
pub const PASS_LEN: usize = SIGNED_LEN + 64;
/// Length of a version-1 pass as text.
pub const PASS_TEXT_LEN: usize = base45::encoded_len(PASS_LEN);

const SIGNED_LEN: usize = 85;
const DOMAIN: &[u8] = b"ParQ pass v1\0";

/// Why a pass or a revocation delta was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PassError {
    /// The text is not base45.
    #[error("the pass is not valid base45: {0}")]
    Encoding(#[from] Base45Error),
    /// The pass has the wrong number of bytes.
    #[error("the pass is {actual} bytes long, expected {expected}")]
    Length {
        /// Bytes expected for its version.
        expected: usize,
        /// Bytes found.
        actual: usize,
    },
    /// The pass's format version is not one this build reads.
    #[error("pass format version {0} is not supported")]
    Version(u8),
    /// The pass names a key that the verifier does not trust (never had, or retired).
    #[error("the pass is signed with {key}, which is not trusted here")]
    UnknownKey {
        /// The key id the pass names.
        key: KeyId,
    },
    /// The signature does not match: the pass was altered or signed by another key.
    #[error("the pass's signature is not valid")]
    BadSignature,
    /// The signed window is empty or outside the representable range.
    #[error("the pass's window is not valid")]
    Window,
    /// A revocation delta starts after the version the gate holds: applying it would skip
    /// revocations.
    #[error("revocations from version {from} cannot follow version {have}; fetch since {have}")]
    RevocationGap {
        /// The version the gate holds.
        have: u64,
        /// The version the delta starts after.
        from: u64,
    },
    /// A revocation delta does not hold exactly the versions `from + 1 ..= to`, in order.
    #[error("the revocation delta is not well-formed")]
    MalformedDelta,
}

impl PassError {
    /// The refusal a gate shows for a pass that failed verification.
    pub fn refusal(&self) -> Refusal {
        match self {
            Self::UnknownKey { .. } => Refusal::UnknownKey,
            _ => Refusal::Invalid,
        }
    }
}

impl From<PassError> for Error {
    fn from(e: PassError) -> Self {
        let field = match e {
            PassError::RevocationGap { .. } | PassError::MalformedDelta => "revocations",
            _ => "pass",
        };
        Error::invalid(field, e.to_string())
    }
}

/// What a credential entitles to: one reservation's spot in one lot, for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entitlement {
    /// The reservation.
    pub reservation: ReservationId,
    /// The lot whose gates it opens.
    pub lot: LotId,
    /// The reserved spot.
    pub spot: SpotId,
    /// The reserved window `[start, end)`; the lot's grace widens it at the gate.
    pub window: Window,
}

impl From<&Reservation> for Entitlement {
    fn from(r: &Reservation) -> Self {
        Self { reservation: r.id, lot: r.lot, spot: r.spot, window: r.window }
    }
}

/// The random nonce that makes every issued pass distinct.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema), schema(value_type = Vec<u8>))]
pub struct PassNonce(pub [u8; 16]);

impl fmt::Debug for PassNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PassNonce({})", Uuid::from_bytes(self.0).simple())
    }
}

/// What a verified pass says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PassClaims {
    /// The key that signed it.
    pub key_id: KeyId,
    /// What it entitles to.
    pub entitlement: Entitlement,
    /// Its nonce.
    pub nonce: PassNonce,
}

/// An issued pass: its claims and its text (what the QR code carries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    claims: PassClaims,
    text: String,
}

impl Pass {
    /// What the pass says.
    pub fn claims(&self) -> &PassClaims {
        &self.claims
    }

    /// The pass as base45 text, [`PASS_TEXT_LEN`] characters, all in the QR alphanumeric set.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text, owned.
    pub fn into_text(self) -> String {
        self.text
    }
}

impl fmt::Display for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PassKeyring {
    /// Signs a pass for `entitlement` with the active key and a fresh random nonce.
    ///
    /// Fails with [`Error::Invalid`] when the window has a fraction of a second, and with
    /// [`Error::Unavailable`] when the system random source fails.
    pub fn issue(&self, entitlement: Entitlement) -> Result<Pass> {
        let mut nonce = [0u8; 16];
        keys::fill_random(&mut nonce)?;
        self.issue_with_nonce(entitlement, PassNonce(nonce))
    }

    /// Signs a pass for `reservation` (see [`issue`](Self::issue)).
    pub fn issue_for(&self, reservation: &Reservation) -> Result<Pass> {
        self.issue(reservation.into())
    }

    /// Signs a pass with a nonce chosen by the caller. Nonces must never repeat for one
    /// reservation; prefer [`issue`](Self::issue), which draws one at random.
    pub fn issue_with_nonce(&self, entitlement: Entitlement, nonce: PassNonce) -> Result<Pass> {
        let whole = |t: Timestamp| t.subsec_nanosecond() == 0;
        if !whole(entitlement.window.start()) || !whole(entitlement.window.end()) {
            return Err(Error::invalid("window", "a pass's window must start and end on whole seconds"));
        }
        let claims = PassClaims { key_id: self.active_id(), entitlement, nonce };
        let signed = signed_bytes(&claims);
        let mut bytes = Vec::with_capacity(PASS_LEN);
        bytes.extend_from_slice(&signed);
        bytes.extend_from_slice(&self.sign(&message(&signed)));
        Ok(Pass { claims, text: base45::encode(&bytes) })
    }
}

impl PublicKeys {
    /// Checks a pass's text and returns what it says.
    ///
    /// Line endings around the text (as barcode readers often append) are ignored; anything
    /// else that is not exactly a pass signed by a trusted key is an error:
    /// [`PassError::UnknownKey`] when the key id is not trusted, [`PassError::BadSignature`]
    /// when the pass was altered or forged, other variants when it is malformed.
    pub fn verify(&self, text: &str) -> Result<PassClaims, PassError> {
        let text = text.trim_matches(['\r', '\n']);
        // Refuse oversized input before decoding it.
        if text.len() > PASS_TEXT_LEN {
            return Err(PassError::Length {
                expected: PASS_LEN,
                actual: text.len() / 3 * 2 + text.len() % 3 / 2,
            });
        }
        let bytes = base45::decode(text)?;
        if let Some(&v) = bytes.first()
            && v != PASS_VERSION
        {
            return Err(PassError::Version(v));
        }
        if bytes.len() != PASS_LEN {
            return Err(PassError::Length { expected: PASS_LEN, actual: bytes.len() });
        }
        let signed: [u8; SIGNED_LEN] = array(&bytes, 0);
        let signature: [u8; 64] = array(&bytes, SIGNED_LEN);
        let key_id = KeyId(u32::from_be_bytes(array(&signed, 1)));
        self.check(key_id, &message(&signed), &signature)?;
        // Only signed data is interpreted from here on.
        let uuid = |at: usize| Uuid::from_bytes(array(&signed, at));
        let second = |at: usize| {
            Timestamp::from_second(i64::from_be_bytes(array(&signed, at))).map_err(|_| PassError::Window)
        };
        let window = Window::new(second(53)?, second(61)?).map_err(|_| PassError::Window)?;
        Ok(PassClaims {
            key_id,
            entitlement: Entitlement {
                reservation: ReservationId(uuid(5)),
                lot: LotId(uuid(21)),
                spot: SpotId(uuid(37)),
                window,
            },
            nonce: PassNonce(array(&signed, 69)),
        })
    }
}

fn signed_bytes(c: &PassClaims) -> [u8; SIGNED_LEN] {
    let e = &c.entitlement;
    let mut out = [0u8; SIGNED_LEN];
    out[0] = PASS_VERSION;
    out[1..5].copy_from_slice(&c.key_id.0.to_be_bytes());
    out[5..21].copy_from_slice(e.reservation.as_uuid().as_bytes());
    out[21..37].copy_from_slice(e.lot.as_uuid().as_bytes());
    out[37..53].copy_from_slice(e.spot.as_uuid().as_bytes());
    out[53..61].copy_from_slice(&e.window.start().as_second().to_be_bytes());
    out[61..69].copy_from_slice(&e.window.end().as_second().to_be_bytes());
    out[69..85].copy_from_slice(&c.nonce.0);
    out
}

fn message(signed: &[u8; SIGNED_LEN]) -> Vec<u8> {
    [DOMAIN, signed.as_slice()].concat()
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}
