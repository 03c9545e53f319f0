//! The offline gate: `parq_core::pass::GateVerifier` behind a foreign-friendly object. The
//! decision is parq-core's (`parq_core::pass::decide`, through the core verifier); this file
//! only converts arguments and results.

use std::sync::{Arc, Mutex};

use parq_core::pass::{self as cpass, GatePolicy, GateState, Scan, ScanId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ParqError;
use crate::types::{
    self, Direction, PassClaims, Presence, PublicKeyRecord, ReentryPolicy, RevocationDelta, ScanDecision,
};

/// The reading id a gate's reader gives (any text: a UUID, a counter), as the 16 bytes the rules
/// engine compares: the first 16 bytes of its SHA-256, exactly as the server's
/// `POST /api/v1/gates/scan` derives it from `scan_id`, so a reading counts once whether it is
/// decided offline or online.
pub fn scan_id_of(text: &str) -> ScanId {
    let digest = Sha256::digest(text.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    ScanId(id)
}

/// The keys of `GET /api/v1/passes/keys`: `{"keys": [{"id", "public_key"}]}`, or the bare list.
pub(crate) fn parse_keys_json(json: &str) -> Result<cpass::PublicKeys, ParqError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Keys {
        Wrapped { keys: cpass::PublicKeys },
        Bare(cpass::PublicKeys),
    }
    match types::from_json::<Keys>("public_keys", json)? {
        Keys::Wrapped { keys } | Keys::Bare(keys) => Ok(keys),
    }
}

/// What [`GateVerifier::save_state`] writes.
#[derive(Serialize, Deserialize)]
struct Saved {
    format: String,
    public_keys: cpass::PublicKeys,
    policy: GatePolicy,
    state: GateState,
}

const FORMAT: &str = "parq-gate/1";

/// An offline gate: verifies passes with the operator's public keys and decides scans with
/// the one rules engine, remembering who is inside and which readings it has let through.
///
/// Share one verifier between the readers of a lot that should share presence. Persist
/// [`save_state`](Self::save_state) and [`restore`](Self::restore) it after a restart.
#[derive(Debug, uniffi::Object)]
pub struct GateVerifier {
    inner: cpass::GateVerifier,
    policy: GatePolicy,
    /// The trusted keys, kept to save them with the state.
    keys: Mutex<cpass::PublicKeys>,
}

impl GateVerifier {
    fn make(keys: cpass::PublicKeys, policy: GatePolicy, state: GateState) -> Arc<Self> {
        Arc::new(Self {
            inner: cpass::GateVerifier::with_state(keys.clone(), policy, state),
            policy,
            keys: Mutex::new(keys),
        })
    }

    fn policy(grace_seconds: i64, reentry: ReentryPolicy) -> Result<GatePolicy, ParqError> {
        Ok(GatePolicy { grace: types::duration("grace_seconds", grace_seconds)?, reentry: reentry.into() })
    }

    /// The core verifier, for Rust callers.
    pub fn core(&self) -> &cpass::GateVerifier {
        &self.inner
    }
}

#[uniffi::export]
impl GateVerifier {
    /// A gate trusting `public_keys`, for a lot with `grace_seconds` of grace and the re-entry
    /// rule `reentry`, with an empty memory.
    ///
    /// # Errors
    /// `Invalid` for a key that is not 64 hex digits of an Ed25519 public key, or a negative grace.
    #[uniffi::constructor]
    pub fn new(
        public_keys: Vec<PublicKeyRecord>,
        grace_seconds: i64,
        reentry: ReentryPolicy,
    ) -> Result<Arc<Self>, ParqError> {
        Ok(Self::make(
            types::public_keys(&public_keys)?,
            Self::policy(grace_seconds, reentry)?,
            GateState::default(),
        ))
    }

    /// As [`new`](Self::new), with the keys as the JSON `GET /api/v1/passes/keys` returns
    /// (`{"keys": [{"id": 1, "public_key": "…"}]}`, or just the list).
    ///
    /// # Errors
    /// `Invalid` (field `public_keys`) for JSON that is not such a list.
    #[uniffi::constructor]
    pub fn from_keys_json(
        keys_json: String,
        grace_seconds: i64,
        reentry: ReentryPolicy,
    ) -> Result<Arc<Self>, ParqError> {
        Ok(Self::make(
            parse_keys_json(&keys_json)?,
            Self::policy(grace_seconds, reentry)?,
            GateState::default(),
        ))
    }

    /// A gate resumed from [`save_state`](Self::save_state): its keys, policy, revocations and
    /// who is inside.
    ///
    /// # Errors
    /// `Invalid` (field `state`) for text that is not a saved gate.
    #[uniffi::constructor]
    pub fn restore(state_json: String) -> Result<Arc<Self>, ParqError> {
        let saved: Saved = types::from_json("state", &state_json)?;
        if saved.format != FORMAT {
            return Err(ParqError::invalid(
                "state",
                format!("format {:?}, expected {FORMAT:?}", saved.format),
            ));
        }
        Ok(Self::make(saved.public_keys, saved.policy, saved.state))
    }

    /// Everything the gate knows, as JSON text to persist; [`restore`](Self::restore) reads it.
    pub fn save_state(&self) -> String {
        let saved = Saved {
            format: FORMAT.to_owned(),
            public_keys: self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
            policy: self.policy,
            state: self.inner.state(),
        };
        serde_json::to_string(&saved).unwrap_or_default()
    }

    /// Decides a scan of a pass's text (as the QR reader gave it) at a gate of `lot_id`, at
    /// `at_epoch_seconds`, and remembers it when allowed. `scan_id` identifies the reading, so
    /// a reading delivered twice counts once. A pass that is not valid is a refusal
    /// (`Invalid`, `UnknownKey`), not an error.
    ///
    /// # Errors
    /// `Invalid` only for arguments that cannot be read: a `lot_id` that is not a UUID, a time
    /// out of range.
    #[uniffi::method(default(scan_id = None))]
    pub fn scan(
        &self,
        pass_text: String,
        lot_id: String,
        direction: Direction,
        at_epoch_seconds: i64,
        scan_id: Option<String>,
    ) -> Result<ScanDecision, ParqError> {
        let lot = types::lot_id("lot_id", &lot_id)?;
        let at = types::timestamp("at_epoch_seconds", at_epoch_seconds)?;
        let mut scan = match direction {
            Direction::Entry => Scan::entry(lot, at),
            Direction::Exit => Scan::exit(lot, at),
        };
        if let Some(id) = scan_id {
            scan = scan.with_id(scan_id_of(&id));
        }
        Ok(self.inner.scan(&pass_text, &scan).into())
    }

    /// Checks a pass's text with this gate's keys and returns what it says.
    ///
    /// # Errors
    /// `InvalidPass` (`Malformed`, `UnknownKey`, `BadSignature`).
    pub fn verify(&self, pass_text: String) -> Result<PassClaims, ParqError> {
        let keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(keys.verify(&pass_text)?.into())
    }

    /// Applies revocations fetched from the server (`revocations(since: revocationVersion())`)
    /// and returns how many were new.
    ///
    /// # Errors
    /// `Invalid` (field `revocations`) for a delta that starts after this gate's version or
    /// is not contiguous; nothing is applied then.
    pub fn apply_revocations(&self, delta: RevocationDelta) -> Result<u64, ParqError> {
        let delta: cpass::RevocationDelta = delta.try_into()?;
        Ok(self.inner.apply_revocations(&delta)? as u64)
    }

    /// As [`apply_revocations`](Self::apply_revocations), with the JSON
    /// `GET /api/v1/gates/revocations` returns.
    ///
    /// # Errors
    /// `Invalid` (field `revocations`) for JSON that is not a delta, or as
    /// [`apply_revocations`](Self::apply_revocations).
    pub fn apply_revocations_json(&self, delta_json: String) -> Result<u64, ParqError> {
        let delta: cpass::RevocationDelta = types::from_json("revocations", &delta_json)?;
        Ok(self.inner.apply_revocations(&delta)? as u64)
    }

    /// The highest revocation version this gate holds: ask the server for what follows it.
    pub fn revocation_version(&self) -> u64 {
        self.inner.revocation_version()
    }

    /// Replaces the trusted keys (after a rotation or a retirement).
    ///
    /// # Errors
    /// `Invalid` for a key that cannot be read; the old keys stay then.
    pub fn set_public_keys(&self, public_keys: Vec<PublicKeyRecord>) -> Result<(), ParqError> {
        let keys = types::public_keys(&public_keys)?;
        self.inner.set_public_keys(keys.clone());
        *self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        Ok(())
    }

    /// The trusted keys.
    pub fn public_keys(&self) -> Vec<PublicKeyRecord> {
        types::public_key_records(&self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The lot's grace, in seconds.
    pub fn grace_seconds(&self) -> i64 {
        types::secs(self.policy.grace)
    }

    /// The lot's re-entry rule.
    pub fn reentry(&self) -> ReentryPolicy {
        self.policy.reentry.into()
    }

    /// Where this gate believes the reservation's vehicle is.
    ///
    /// # Errors
    /// `Invalid` for an id that is not a UUID.
    pub fn presence(&self, reservation_id: String) -> Result<Presence, ParqError> {
        Ok(self.inner.presence(types::reservation_id("reservation_id", &reservation_id)?).into())
    }

    /// Forgets reservations whose vehicle is not inside and that can no longer enter at
    /// `now_epoch_seconds`; returns how many were forgotten.
    ///
    /// # Errors
    /// `Invalid` for a time out of range.
    pub fn prune(&self, now_epoch_seconds: i64) -> Result<u64, ParqError> {
        Ok(self.inner.prune(types::timestamp("now_epoch_seconds", now_epoch_seconds)?) as u64)
    }
}
