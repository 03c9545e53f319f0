//! Signing keys, their ids, rotation, and the public half that gates carry.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pass::PassError;

/// Names a pass-signing key. Every pass carries the id of the key that signed it, so a gate
/// picks the right public key and keys rotate without invalidating passes already issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {}", self.0)
    }
}

/// The 32-byte secret seed of an Ed25519 signing key. It is written as 64 hex digits in
/// configuration; its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySeed([u8; 32]);

impl KeySeed {
    /// A fresh seed from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        fill_random(&mut seed)?;
        Ok(Self(seed))
    }

    /// Wraps raw seed bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw seed bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Result<Self> {
        Ok(Self(hex_to_32(hex.trim(), "seed")?))
    }

    /// The seed as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// The public key that verifies what this seed signs.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(SigningKey::from_bytes(&self.0).verifying_key())
    }
}

impl fmt::Debug for KeySeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySeed(<secret>)")
    }
}

impl Serialize for KeySeed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeySeed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 public key that verifies passes. Written as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses 32 bytes; fails unless they are a valid, non-weak Ed25519 point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| Error::invalid("public_key", "not an Ed25519 public key"))?;
        if key.is_weak() {
            return Err(Error::invalid("public_key", "a weak (small-order) Ed25519 key"));
        }
        Ok(Self(key))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex: &str) -> Result<Self> {
        Self::from_bytes(&hex_to_32(hex.trim(), "public_key")?)
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        to_hex(self.0.as_bytes())
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

#[cfg(feature = "utoipa")]
impl utoipa::PartialSchema for PublicKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9a-fA-F]{64}$"))
            .description(Some("An Ed25519 public key: 32 bytes as 64 hex digits (answered in lower case)."))
            .into()
    }
}

#[cfg(feature = "utoipa")]
impl utoipa::ToSchema for PublicKey {}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// The public keys a gate trusts, by key id. Serialised as a list of `{ "id", "public_key" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<PublicKeyEntry>", into = "Vec<PublicKeyEntry>")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema), schema(value_type = Vec<PublicKeyEntry>))]
pub struct PublicKeys(BTreeMap<KeyId, PublicKey>);

/// One entry of [`PublicKeys`] in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct PublicKeyEntry {
    /// The key's id.
    pub id: KeyId,
    /// The key.
    pub public_key: PublicKey,
}

impl From<Vec<PublicKeyEntry>> for PublicKeys {
    fn from(entries: Vec<PublicKeyEntry>) -> Self {
        Self(entries.into_iter().map(|e| (e.id, e.public_key)).collect())
    }
}

impl From<PublicKeys> for Vec<PublicKeyEntry> {
    fn from(keys: PublicKeys) -> Self {
        keys.0.into_iter().map(|(id, public_key)| PublicKeyEntry { id, public_key }).collect()
    }
}

impl PublicKeys {
    /// No keys: every pass is refused as signed by an unknown key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key` for passes that name `id` (replacing an earlier key of that id).
    pub fn insert(&mut self, id: KeyId, key: PublicKey) {
        self.0.insert(id, key);
    }

    /// Stops trusting `id`; returns whether it was trusted.
    pub fn remove(&mut self, id: KeyId) -> bool {
        self.0.remove(&id).is_some()
    }

    /// The key of `id`, if trusted.
    pub fn get(&self, id: KeyId) -> Option<&PublicKey> {
        self.0.get(&id)
    }

    /// The trusted key ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.0.keys().copied()
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks a pass's signature: the key must be known and the signature valid (strict
    /// Ed25519 verification, which also rejects malleable signatures).
    pub(crate) fn check(&self, id: KeyId, message: &[u8], signature: &[u8; 64]) -> Result<(), PassError> {
        let key = self.get(id).ok_or(PassError::UnknownKey { key: id })?;
        if key.verify(message, signature) { Ok(()) } else { Err(PassError::BadSignature) }
    }
}

/// The keys of a pass issuer: one active signing key, and the public keys of earlier signing
/// keys so that passes they signed still verify.
///
/// Rotation: [`rotate`](Self::rotate) makes a new key active and keeps only the public half of
/// the old one; [`retire`](Self::retire) drops an old key id once no live pass names it. Gates
/// must receive a new key's public half ([`public_keys`](Self::public_keys)) before passes
/// signed with it reach them, so distribute public keys before (or as) a rotated issuer
/// starts signing.
///
/// Serialised for configuration as
/// `{ "active": { "id": 2, "seed": "<64 hex digits>" }, "previous": [{ "id": 1, "public_key": "<64 hex digits>" }] }`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "KeyringConfig", into = "KeyringConfig")]
pub struct PassKeyring {
    active_id: KeyId,
    active: KeySeed,
    signing: SigningKey,
    previous: PublicKeys,
}

/// The configuration form of a [`PassKeyring`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringConfig {
    /// The key that signs new passes.
    pub active: SigningKeyEntry,
    /// Public keys of earlier signing keys, still trusted for verification.
    #[serde(default)]
    pub previous: PublicKeys,
}

/// A signing key in configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyEntry {
    /// Its id.
    pub id: KeyId,
    /// Its secret seed.
    pub seed: KeySeed,
}

impl TryFrom<KeyringConfig> for PassKeyring {
    type Error = Error;
    fn try_from(c: KeyringConfig) -> Result<Self> {
        if c.previous.get(c.active.id).is_some() {
            return Err(Error::invalid("keyring", format!("{} is both active and previous", c.active.id)));
        }
        Ok(Self::with_previous(c.active.id, c.active.seed, c.previous))
    }
}

impl From<PassKeyring> for KeyringConfig {
    fn from(k: PassKeyring) -> Self {
        KeyringConfig { active: SigningKeyEntry { id: k.active_id, seed: k.active }, previous: k.previous }
    }
}

impl PassKeyring {
    /// A keyring whose active key is a fresh random key named `id`.
    pub fn generate(id: KeyId) -> Result<Self> {
        Ok(Self::new(id, KeySeed::generate()?))
    }

    /// A keyring whose active key is `seed`, named `id`.
    pub fn new(id: KeyId, seed: KeySeed) -> Self {
        Self::with_previous(id, seed, PublicKeys::new())
    }

    fn with_previous(id: KeyId, seed: KeySeed, previous: PublicKeys) -> Self {
        let signing = SigningKey::from_bytes(seed.as_bytes());
        Self { active_id: id, active: seed, signing, previous }
    }

    /// The id of the key that signs new passes.
    pub fn active_id(&self) -> KeyId {
        self.active_id
    }

    /// Makes a fresh random key named `id` active; the current key stays trusted for
    /// verification. Fails if `id` is already in use.
    pub fn rotate(&mut self, id: KeyId) -> Result<()> {
        self.rotate_to(id, KeySeed::generate()?)
    }

    /// Makes `seed`, named `id`, the active key; the current key stays trusted for
    /// verification. Fails if `id` is already in use (ids are never reused, so a pass's key
    /// id always names one key).
    pub fn rotate_to(&mut self, id: KeyId, seed: KeySeed) -> Result<()> {
        if id == self.active_id || self.previous.get(id).is_some() {
            return Err(Error::invalid("key_id", format!("{id} is already in the keyring")));
        }
        let old = std::mem::replace(self, Self::new(id, seed));
        self.previous = old.previous;
        self.previous.insert(old.active_id, PublicKey(old.signing.verifying_key()));
        Ok(())
    }

    /// Stops trusting an earlier key; passes it signed are then refused as signed by an
    /// unknown key. Returns whether the key was in the keyring. The active key cannot be
    /// retired (rotate first).
    pub fn retire(&mut self, id: KeyId) -> Result<bool> {
        if id == self.active_id {
            return Err(Error::invalid("key_id", format!("{id} is active; rotate before retiring it")));
        }
        Ok(self.previous.remove(id))
    }

    /// Every public key a gate needs: the active key's and the earlier ones'.
    pub fn public_keys(&self) -> PublicKeys {
        let mut keys = self.previous.clone();
        keys.insert(self.active_id, PublicKey(self.signing.verifying_key()));
        keys
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for PassKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassKeyring")
            .field("active_id", &self.active_id)
            .field("previous", &self.previous.ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::unavailable("the system random source", Some(Box::new(e))))
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

fn hex_to_32(hex: &str, field: &'static str) -> Result<[u8; 32]> {
    let digit = |c: u8| char::from(c).to_digit(16);
    let raw = hex.as_bytes();
    if raw.len() != 64 {
        return Err(Error::invalid(field, format!("expected 64 hex digits, got {}", hex.chars().count())));
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(raw.chunks_exact(2)) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => *o = (h * 16 + l) as u8,
            _ => return Err(Error::invalid(field, "expected only hex digits")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let seed = KeySeed::from_bytes(std::array::from_fn(|i| (i * 9) as u8));
        assert_eq!(KeySeed::from_hex(&seed.to_hex()).unwrap(), seed);
        assert_eq!(KeySeed::from_hex(&seed.to_hex().to_uppercase()).unwrap(), seed);
        assert!(KeySeed::from_hex(&seed.to_hex()[1..]).is_err());
        assert!(KeySeed::from_hex(&format!("g{}", &seed.to_hex()[1..])).is_err());
        assert!(KeySeed::from_hex(&format!("+{}", &seed.to_hex()[1..])).is_err());
        assert_eq!(format!("{seed:?}"), "KeySeed(<secret>)");
    }

    #[test]
    fn keyring_config_round_trips_and_keeps_previous_keys() {
        let mut ring = PassKeyring::new(KeyId(1), KeySeed::from_bytes([7; 32]));
        ring.rotate_to(KeyId(2), KeySeed::from_bytes([8; 32])).unwrap();
        let json = serde_json::to_value(&ring).unwrap();
        assert_eq!(json["active"]["id"], 2);
        assert_eq!(json["active"]["seed"], "08".repeat(32));
        assert_eq!(json["previous"][0]["id"], 1);
        assert_eq!(json["previous"][0]["public_key"], KeySeed::from_bytes([7; 32]).public_key().to_hex());
        let back: PassKeyring = serde_json::from_value(json).unwrap();
        assert_eq!(back, ring);
        assert_eq!(back.public_keys().ids().collect::<Vec<_>>(), [KeyId(1), KeyId(2)]);
        assert!(!format!("{ring:?}").contains(&"08".repeat(4)));
    }

    #[test]
    fn key_ids_are_never_reused_and_the_active_key_cannot_be_retired() {
        let mut ring = PassKeyring::new(KeyId(1), KeySeed::from_bytes([7; 32]));
        ring.rotate_to(KeyId(2), KeySeed::from_bytes([8; 32])).unwrap();
        assert!(ring.rotate_to(KeyId(1), KeySeed::from_bytes([9; 32])).is_err());
        assert!(ring.rotate_to(KeyId(2), KeySeed::from_bytes([9; 32])).is_err());
        assert!(ring.retire(KeyId(2)).is_err());
        assert!(ring.retire(KeyId(1)).unwrap());
        assert!(!ring.retire(KeyId(1)).unwrap());
        assert_eq!(ring.public_keys().ids().collect::<Vec<_>>(), [KeyId(2)]);
    }

    #[test]
    fn weak_public_keys_are_rejected() {
        // The identity point: every signature over it is meaningless.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(PublicKey::from_bytes(&identity).is_err());
    }
}
