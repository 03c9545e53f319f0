//! Base45 ([RFC 9285](https://www.rfc-editor.org/rfc/rfc9285)): bytes as text made only of the
//! 45 characters of a QR code's alphanumeric mode, so a pass fits in a small code.
//!
//! Every two bytes become three characters and a trailing single byte becomes two. Decoding is
//! strict: a character outside the alphabet, a length of the form `3n + 1`, or a group whose
//! value does not fit its bytes is an error, so each byte string has exactly one text form.
//!
//! Written here rather than taken from the `base45` crate (3.2): that crate decodes a final
//! group out of range (`"ZZ"`, 1610) by truncating it to a byte (`[74]`), so one pass would
//! have several texts, and its error says neither where nor why.

/// The 45 characters, in value order.
pub const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/// Why a text is not valid base45.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Base45Error {
    /// A character outside the base45 alphabet (lower-case letters included).
    #[error("character {found:?} at position {position} is not in the base45 alphabet")]
    InvalidCharacter {
        /// Its byte offset in the text.
        position: usize,
        /// The character.
        found: char,
    },
    /// The text's length leaves one dangling character (`len % 3 == 1`).
    #[error("a base45 text cannot be {len} characters long")]
    InvalidLength {
        /// The text's length in characters.
        len: usize,
    },
    /// A group encodes a number too large for its bytes (over 65535 for three characters,
    /// over 255 for a final two).
    #[error("the base45 group at position {position} is out of range")]
    OutOfRange {
        /// The byte offset of the group's first character.
        position: usize,
    },
}

/// The text form of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(encoded_len(bytes.len()));
    let mut push = |mut n: u32, digits: usize| {
        for _ in 0..digits {
            out.push(char::from(ALPHABET[(n % 45) as usize]));
            n /= 45;
        }
    };
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        push(u32::from(pair[0]) * 256 + u32::from(pair[1]), 3);
    }
    if let [last] = chunks.remainder() {
        push(u32::from(*last), 2);
    }
    out
}

/// The length of the text form of `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    n / 2 * 3 + n % 2 * 2
}

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|v| v as u32)
}

/// The bytes of a base45 text, rejecting anything that [`encode`] would not have produced.
pub fn decode(text: &str) -> Result<Vec<u8>, Base45Error> {
    let mut digits = Vec::with_capacity(text.len());
    for (position, found) in text.char_indices() {
        let v = u8::try_from(found).ok().and_then(value);
        digits.push(v.ok_or(Base45Error::InvalidCharacter { position, found })?);
    }
    // Every character is ASCII from here on, so positions in bytes and characters coincide.
    if digits.len() % 3 == 1 {
        return Err(Base45Error::InvalidLength { len: digits.len() });
    }
    let mut out = Vec::with_capacity(digits.len() / 3 * 2 + 1);
    for (i, group) in digits.chunks(3).enumerate() {
        let position = i * 3;
        let n = group.iter().rev().fold(0u32, |n, d| n * 45 + d);
        if let [_, _, _] = group {
            let n = u16::try_from(n).map_err(|_| Base45Error::OutOfRange { position })?;
            out.extend_from_slice(&n.to_be_bytes());
        } else {
            out.push(u8::try_from(n).map_err(|_| Base45Error::OutOfRange { position })?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_9285_examples() {
        // The examples of RFC 9285, section 4.3 and 4.4.
        assert_eq!(encode(b"AB"), "BB8");
        assert_eq!(encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(encode(b"ietf!"), "QED8WEX0");
        assert_eq!(decode("QED8WEX0").unwrap(), b"ietf!");
        assert_eq!(decode("%69 VD92EX0").unwrap(), b"Hello!!");
    }

    #[test]
    fn round_trips_every_length_and_byte() {
        assert_eq!(encode(b""), "");
        assert_eq!(decode("").unwrap(), b"");
        for len in 0..70usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len * 11) as u8).collect();
            let text = encode(&bytes);
            assert_eq!(text.len(), encoded_len(len));
            assert!(text.bytes().all(|b| ALPHABET.contains(&b)), "{text}");
            assert_eq!(decode(&text).unwrap(), bytes);
        }
        // The extremes of each group.
        for pair in [[0u8, 0], [0, 255], [255, 0], [255, 255]] {
            assert_eq!(decode(&encode(&pair)).unwrap(), pair);
        }
        for b in 0..=255u8 {
            assert_eq!(decode(&encode(&[b])).unwrap(), [b]);
        }
        assert_eq!(encode(&[255, 255]), "FGW");
        assert_eq!(encode(&[255]), "U5");
    }

    #[test]
    fn rejects_characters_outside_the_alphabet() {
        assert_eq!(decode("bb8"), Err(Base45Error::InvalidCharacter { position: 0, found: 'b' }));
        assert_eq!(decode("BB8\n"), Err(Base45Error::InvalidCharacter { position: 3, found: '\n' }));
        assert_eq!(decode("BB8=="), Err(Base45Error::InvalidCharacter { position: 3, found: '=' }));
        assert_eq!(decode("BBé"), Err(Base45Error::InvalidCharacter { position: 2, found: 'é' }));
        assert_eq!(decode("B_8"), Err(Base45Error::InvalidCharacter { position: 1, found: '_' }));
    }

    #[test]
    fn rejects_dangling_characters() {
        assert_eq!(decode("B"), Err(Base45Error::InvalidLength { len: 1 }));
        assert_eq!(decode("BB8B"), Err(Base45Error::InvalidLength { len: 4 }));
    }

    #[test]
    fn rejects_groups_out_of_range() {
        // 65536 = "GGW" (16 + 16*45 + 32*2025), one more than two bytes hold.
        assert_eq!(decode("GGW"), Err(Base45Error::OutOfRange { position: 0 }));
        assert_eq!(decode(":::"), Err(Base45Error::OutOfRange { position: 0 }));
        assert_eq!(decode("BB8GGW"), Err(Base45Error::OutOfRange { position: 3 }));
        // A final pair holds one byte: 256 = "V5" (31 + 5*45) is too large, 255 = "U5" is not.
        assert_eq!(decode("V5"), Err(Base45Error::OutOfRange { position: 0 }));
        assert_eq!(decode("ZZ"), Err(Base45Error::OutOfRange { position: 0 }));
        assert_eq!(decode("BB8::"), Err(Base45Error::OutOfRange { position: 3 }));
        assert_eq!(decode("U5").unwrap(), [255]);
    }
}
