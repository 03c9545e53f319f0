//! The pass keyring: the Ed25519 keys, each with an id, that sign and verify access passes.
//!
//! Every replica of a deployment is given the same keyring (the secret `pass_keys`, usually as
//! `PARQ_PASS_KEYS_FILE=/path`), so a pass issued by one replica is accepted by every other and
//! by every offline gate that fetched `GET /api/v1/passes/keys`. The document is TOML, one
//! `[[keys]]` table per key, as `parq keys generate` writes it:
//!
//! ```toml
//! [[keys]]
//! id = 1
//! retired = true     # verifies nothing any more; kept so that id 1 is never used again
//!
//! [[keys]]
//! id = 2
//! seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
//! ```
//!
//! - `id`: a whole number from 1 to 4294967295, unique in the document; every pass names the id
//!   of the key that signed it.
//! - `seed`: the key's secret, 64 hex digits (an Ed25519 seed); required unless retired.
//! - `retired`: `true` for a key that no longer verifies anything (its seed may be left out).
//!
//! The active key with the highest id signs new passes; every other active key still verifies
//! the passes it signed, until it is retired. Rotation is: add a key (`parq keys rotate FILE`),
//! restart every replica with the new file; once the passes of the old key have ended, retire
//! it (`parq keys retire FILE ID`) and restart again. A document is refused, with a message that
//! names what is wrong and never repeats a seed, when it is not TOML, has an unknown field, a
//! duplicate id, a seed that is not 64 hex digits, or no active key.

use std::fmt;

use parq_core::pass::{KeyId, KeySeed, KeyringConfig, PassKeyring, PublicKeys, SigningKeyEntry};

/// One key of a [`Keyring`].
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Its id.
    pub id: u32,
    /// Its secret; `None` for a retired key whose seed was dropped.
    pub seed: Option<KeySeed>,
    /// Whether it is retired (verifies nothing).
    pub retired: bool,
}

impl KeyEntry {
    /// Whether it signs or verifies passes.
    pub fn active(&self) -> bool {
        !self.retired
    }
}

impl fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEntry")
            .field("id", &self.id)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

/// A pass keyring document, checked: ids are unique, every active key has a seed, and at least
/// one key is active. Its `Debug` form shows ids only.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Keyring {
    /// The keys, by id.
    keys: Vec<KeyEntry>,
}

/// What a keyring document holds wrongly. The message never repeats a seed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyringError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, KeyringError> {
    Err(KeyringError(message.into()))
}

/// Where `offset` is in `text`, as a line number from 1.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |before| before.matches('\n').count() + 1)
}

impl Keyring {
    /// Parses and checks a keyring document (see the module docs).
    ///
    /// # Errors
    /// A [`KeyringError`] that says what is wrong, without the document's secrets.
    pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
        // Read as plain TOML values, then checked here: the parser's own messages may quote the
        // document, and so a seed.
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                let at = e.span().map(|s| format!(" at line {}", line_of(text, s.start))).unwrap_or_default();
                return err(format!("is not a valid TOML keyring document (a syntax error{at})"));
            }
        };
        for name in table.keys() {
            if name != "keys" {
                return err(format!(
                    "has an unknown field {:?}; a keyring is a list of [[keys]] tables",
                    short(name)
                ));
            }
        }
        let Some(list) = table.get("keys") else {
            return err("has no keys: write one with `parq keys generate`");
        };
        let Some(list) = list.as_array() else {
            return err("keys must be a list of [[keys]] tables (id, seed, retired)");
        };
        let mut keys: Vec<KeyEntry> = Vec::with_capacity(list.len());
        for (n, item) in list.iter().enumerate() {
            let which = format!("key #{} of the document", n + 1);
            let Some(t) = item.as_table() else {
                return err(format!("{which} is not a table with id and seed"));
            };
            for name in t.keys() {
                if !matches!(name.as_str(), "id" | "seed" | "retired") {
                    return err(format!(
                        "{which} has an unknown field {:?} (accepted: id, seed, retired)",
                        short(name)
                    ));
                }
            }
            let id = match t.get("id") {
                None => return err(format!("{which} has no id")),
                Some(toml::Value::Integer(i)) => match u32::try_from(*i) {
                    Ok(id) if id > 0 => id,
                    _ => return err(format!("{which}: id must be a whole number from 1 to 4294967295")),
                },
                Some(_) => return err(format!("{which}: id must be a whole number from 1 to 4294967295")),
            };
            let retired = match t.get("retired") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return err(format!("key {id}: retired must be true or false")),
            };
            let seed = match t.get("seed") {
                None => None,
                Some(toml::Value::String(s)) => match KeySeed::from_hex(s) {
                    Ok(seed) => Some(seed),
                    Err(_) => {
                        return err(format!(
                            "key {id}: seed must be 64 hex digits (32 bytes); `parq keys generate` writes one"
                        ));
                    }
                },
                Some(_) => return err(format!("key {id}: seed must be a string of 64 hex digits")),
            };
            if seed.is_none() && !retired {
                return err(format!("key {id} has no seed (only a retired key may leave it out)"));
            }
            if keys.iter().any(|k| k.id == id) {
                return err(format!("key id {id} appears twice; every key needs an id of its own"));
            }
            if let Some(s) = &seed
                && let Some(twin) = keys.iter().find(|k| k.seed.as_ref() == Some(s))
            {
                return err(format!("keys {} and {id} have the same seed; each key needs its own", twin.id));
            }
            keys.push(KeyEntry { id, seed, retired });
        }
        keys.sort_by_key(|k| k.id);
        let ring = Keyring { keys };
        if ring.signing().is_none() {
            return err(
                "has no active key (every key is retired): add one with `parq keys rotate FILE` before retiring the last",
            );
        }
        Ok(ring)
    }

    /// A new keyring of one fresh random key, id 1.
    ///
    /// # Errors
    /// When the operating system gives no randomness.
    pub fn generate() -> parq_core::Result<Keyring> {
        Ok(Keyring { keys: vec![KeyEntry { id: 1, seed: Some(KeySeed::generate()?), retired: false }] })
    }

    /// A keyring of the one key `seed`, id 1 (what `pass_signing_key` gives).
    pub fn single(seed: KeySeed) -> Keyring {
        Keyring { keys: vec![KeyEntry { id: 1, seed: Some(seed), retired: false }] }
    }

    /// The keys, by id.
    pub fn keys(&self) -> &[KeyEntry] {
        &self.keys
    }

    /// The key that signs new passes: the active key with the highest id.
    pub fn signing(&self) -> Option<&KeyEntry> {
        self.keys.iter().rev().find(|k| k.active() && k.seed.is_some())
    }

    /// The id the signing key has.
    pub fn signing_id(&self) -> u32 {
        self.signing().map_or(0, |k| k.id)
    }

    /// Adds a fresh random key with the next id (one above every id ever used in the
    /// document); it signs new passes from then on, and the older active keys still verify.
    /// Returns its id.
    ///
    /// # Errors
    /// When the ids are used up, or the operating system gives no randomness.
    pub fn rotate(&mut self) -> Result<u32, KeyringError> {
        let last = self.keys.last().map_or(0, |k| k.id);
        let Some(id) = last.checked_add(1) else {
            return err("every key id up to 4294967295 is used");
        };
        let seed = KeySeed::generate().map_err(|e| KeyringError(e.to_string()))?;
        self.keys.push(KeyEntry { id, seed: Some(seed), retired: false });
        Ok(id)
    }

    /// Retires key `id`: passes it signed are refused from then on, and its seed is dropped
    /// from the document. Returns `false` when it was retired already.
    ///
    /// # Errors
    /// When there is no such key, or it is the key that signs (rotate first).
    pub fn retire(&mut self, id: u32) -> Result<bool, KeyringError> {
        let signing = self.signing_id();
        let Some(k) = self.keys.iter_mut().find(|k| k.id == id) else {
            return err(format!("there is no key {id} in the keyring"));
        };
        if k.retired {
            return Ok(false);
        }
        if id == signing {
            return err(format!(
                "key {id} signs new passes; add a newer key first (`parq keys rotate FILE`), restart every replica, then retire {id}"
            ));
        }
        k.retired = true;
        k.seed = None;
        Ok(true)
    }

    /// The keyring the engine signs and verifies with: the signing key, and the public halves
    /// of the other active keys.
    pub fn pass_keyring(&self) -> PassKeyring {
        let signing = self.signing().expect("a checked keyring has an active key");
        let mut previous = PublicKeys::new();
        for k in self.keys.iter().filter(|k| k.active() && k.id != signing.id) {
            if let Some(seed) = &k.seed {
                previous.insert(KeyId(k.id), seed.public_key());
            }
        }
        let config = KeyringConfig {
            active: SigningKeyEntry {
                id: KeyId(signing.id),
                seed: signing.seed.clone().expect("the signing key has a seed"),
            },
            previous,
        };
        PassKeyring::try_from(config).expect("ids are unique")
    }

    /// The document, as `parq keys generate` writes it: a comment that says how it is used,
    /// then one `[[keys]]` table per key.
    pub fn to_document(&self) -> String {
        let mut out = String::from(
            "# ParQ pass keyring: give this same file to every replica (PARQ_PASS_KEYS_FILE).\n\
             # The active key with the highest id signs new passes; every active key verifies.\n\
             # Rotate: `parq keys rotate FILE`, restart every replica; once the old key's passes\n\
             # have ended: `parq keys retire FILE ID`, restart again. Keep this file secret.\n",
        );
        for k in &self.keys {
            out.push_str("\n[[keys]]\n");
            out.push_str(&format!("id = {}\n", k.id));
            if let Some(seed) = &k.seed {
                out.push_str(&format!("seed = \"{}\"\n", seed.to_hex()));
            }
            if k.retired {
                out.push_str("retired = true\n");
            }
        }
        out
    }
}

/// A field name as said in a message: at most 40 characters of it.
fn short(name: &str) -> String {
    name.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const B: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

    #[test]
    fn the_newest_active_key_signs_and_the_others_verify() {
        let doc = format!("[[keys]]\nid = 1\nseed = \"{A}\"\n\n[[keys]]\nid = 3\nseed = \"{B}\"\n");
        let ring = Keyring::parse(&doc).unwrap();
        assert_eq!(ring.signing_id(), 3);
        let pass = ring.pass_keyring();
        assert_eq!(pass.active_id(), KeyId(3));
        assert_eq!(pass.public_keys().ids().collect::<Vec<_>>(), [KeyId(1), KeyId(3)]);
        // The written document reads back as the same keyring.
        assert_eq!(Keyring::parse(&ring.to_document()).unwrap(), ring);
        let inline = format!("keys = [{{ id = 7, seed = \"{A}\" }}]");
        assert_eq!(Keyring::parse(&inline).unwrap().signing_id(), 7);
    }

    #[test]
    fn rotation_adds_the_next_id_and_retiring_drops_the_seed() {
        let mut ring = Keyring::generate().unwrap();
        assert_eq!(ring.signing_id(), 1);
        assert_eq!(ring.rotate().unwrap(), 2);
        assert_eq!(ring.signing_id(), 2);
        assert!(ring.retire(2).unwrap_err().0.contains("rotate"), "the signing key stays");
        assert!(ring.retire(1).unwrap());
        assert!(!ring.retire(1).unwrap(), "retired already");
        assert!(ring.retire(9).is_err());
        let doc = ring.to_document();
        let back = Keyring::parse(&doc).unwrap();
        assert_eq!(back, ring);
        assert_eq!(back.pass_keyring().public_keys().ids().collect::<Vec<_>>(), [KeyId(2)]);
        // An id is never used twice, even after its key is retired.
        let mut back = back;
        assert_eq!(back.rotate().unwrap(), 3);
    }

    #[test]
    fn bad_documents_say_what_is_wrong_without_the_seed() {
        let cases = [
            (format!("[[keys]]\nid = 1\nseed = \"{}\"\n", &A[..60]), "64 hex digits"),
            (format!("[[keys]]\nid = 1\nseed = \"{}zz\"\n", &A[..62]), "64 hex digits"),
            (
                format!("[[keys]]\nid = 1\nseed = \"{A}\"\n[[keys]]\nid = 1\nseed = \"{B}\"\n"),
                "appears twice",
            ),
            (format!("[[keys]]\nid = 1\nseed = \"{A}\"\nretired = true\n"), "no active key"),
            ("keys = []".to_owned(), "no active key"),
            (String::new(), "has no keys"),
            (format!("[[keys]]\nid = 0\nseed = \"{A}\"\n"), "from 1"),
            (format!("[[keys]]\nid = \"{A}\"\n"), "whole number"),
            ("[[keys]]\nid = 1\n".to_owned(), "has no seed"),
            (format!("[[keys]]\nid = 1\nseed = \"{A}\"\nsecret = 1\n"), "unknown field"),
            (format!("[[keys]]\nid = 1\nseed = \"{A}\"\n[[keys]]\nid = 2\nseed = \"{A}\"\n"), "same seed"),
            (format!("[[keys]]\nid = 1\nseed = \"{A}\n"), "line 3"),
            (format!("seed = \"{A}\""), "unknown field"),
        ];
        for (doc, says) in cases {
            let e = Keyring::parse(&doc).unwrap_err().0;
            assert!(e.contains(says), "{doc:?}: {e}");
            assert!(!e.contains(&A[..16]) && !e.contains(&B[..16]), "a seed in the message: {e}");
        }
    }

    #[test]
    fn debug_shows_no_seed() {
        let ring = Keyring::parse(&format!("[[keys]]\nid = 1\nseed = \"{A}\"\n")).unwrap();
        assert!(!format!("{ring:?}").contains(&A[..8]));
    }
}
