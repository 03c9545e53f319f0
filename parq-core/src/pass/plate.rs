//! Licence plates as an alternative credential.

use crate::error::{Error, Result};

/// The longest plate, in characters, once normalised.
pub const MAX_PLATE_LEN: usize = 16;

/// The canonical form of a licence plate, so that a plate typed by a driver and one read by a
/// camera compare equal.
///
/// * Letters are upper-cased (Unicode-aware, so `ö` becomes `Ö`).
/// * Whitespace, dashes (`-`) and dots (`.`) are removed: `ab-12 3.c` becomes `AB123C`.
/// * Only letters and the ASCII digits `0`–`9` may remain; anything else is refused, as is a
///   plate that is empty or longer than [`MAX_PLATE_LEN`] characters once normalised.
///
/// Look-alike characters are deliberately **not** mapped (`O` stays distinct from `0`, `I`
/// from `1`): many countries use both on plates, so merging them would make two different
/// vehicles' plates equal. Tolerating a camera's misreads belongs to plate matching, not here.
pub fn normalize_plate(plate: &str) -> Result<String> {
    let mut out = String::with_capacity(plate.len());
    for c in plate.chars() {
        if c.is_whitespace() || c == '-' || c == '.' {
            continue;
        }
        if !(c.is_alphabetic() || c.is_ascii_digit()) {
            return Err(Error::invalid("plate", format!("{c:?} cannot appear in a licence plate")));
        }
        // Some letters upper-case to a letter and combining marks (`ΐ` to `Ϊ́`), which are
        // not letters: such a plate would normalise to a form that is itself refused.
        for u in c.to_uppercase() {
            if !(u.is_alphabetic() || u.is_ascii_digit()) {
                return Err(Error::invalid(
                    "plate",
                    format!("{c:?} upper-cases to {u:?}, which cannot appear in a licence plate"),
                ));
            }
            out.push(u);
        }
    }
    let len = out.chars().count();
    if len == 0 {
        return Err(Error::invalid("plate", "the plate is empty"));
    }
    if len > MAX_PLATE_LEN {
        return Err(Error::invalid("plate", format!("the plate is longer than {MAX_PLATE_LEN} characters")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_and_read_plates_compare_equal() {
        assert_eq!(normalize_plate("ab-123-cd").unwrap(), "AB123CD");
        assert_eq!(normalize_plate(" AB 123 CD ").unwrap(), "AB123CD");
        assert_eq!(normalize_plate("m.ab.1234").unwrap(), "MAB1234");
        assert_eq!(normalize_plate("MÜ-x 99").unwrap(), "MÜX99");
        assert_eq!(normalize_plate("abc\u{a0}123").unwrap(), "ABC123");
    }

    #[test]
    fn look_alikes_stay_distinct() {
        assert_ne!(normalize_plate("O0I1").unwrap(), normalize_plate("0011").unwrap());
        assert_eq!(normalize_plate("o0i1").unwrap(), "O0I1");
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        for bad in ["", "  ", "--..", "AB_123", "AB/123", "AB*1", "AB١٢٣", "AB123🚗"] {
            assert!(
                matches!(normalize_plate(bad), Err(Error::Invalid { field: "plate", .. })),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(normalize_plate(&"A".repeat(MAX_PLATE_LEN)).unwrap().len(), MAX_PLATE_LEN);
        assert!(normalize_plate(&"A".repeat(MAX_PLATE_LEN + 1)).is_err());
        // Separators do not count towards the length.
        assert!(normalize_plate(&"A-".repeat(MAX_PLATE_LEN)).is_ok());
    }

    #[test]
    fn a_normalised_plate_normalises_to_itself() {
        // Found by fuzzing: `ΐ` (U+0390) upper-cases to `Ι` with two combining accents, which
        // the plate then refused when normalised again.
        for plate in ["ΙΐΝ24", "ǰ 123", "ab-12 3.c", "MÜ-x 99", "straße 1", "ǆ 5"] {
            if let Ok(once) = normalize_plate(plate) {
                assert_eq!(normalize_plate(&once).ok(), Some(once), "{plate:?}");
            }
        }
        assert!(matches!(normalize_plate("ΙΐΝ24"), Err(Error::Invalid { field: "plate", .. })));
        assert!(matches!(normalize_plate("ǰ 123"), Err(Error::Invalid { field: "plate", .. })));
        assert_eq!(normalize_plate("straße 1").unwrap(), "STRASSE1");
    }
}
