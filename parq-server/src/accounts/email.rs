//! Email addresses as accounts keep them: trimmed, Unicode NFKC, lower-case; refused when they
//! hold characters a reader cannot see or that reorder the text around them (zero-width
//! characters, right-to-left overrides and isolates, other format and control characters),
//! so that two accounts cannot look alike.

use unicode_normalization::UnicodeNormalization;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// A character that is invisible, a control, or changes the text's direction.
    #[error(
        "holds an invisible, control or text-direction character (U+{:04X}); type the address again without it",
        u32::from(*.0)
    )]
    Hidden(char),
    /// Not of the shape `local@domain.tld`, or too long.
    #[error("is not an email address")]
    Malformed,
}

/// Whether `c` is invisible, a control character, or a bidirectional formatting character.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{205F}'..='\u{206F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFB}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// The address as accounts keep it, or why it is refused.
pub fn normalize(raw: &str) -> Result<String, EmailError> {
    let trimmed = raw.trim();
    if let Some(c) = trimmed.chars().find(|c| is_hidden(*c)) {
        return Err(EmailError::Hidden(c));
    }
    let e = trimmed.nfkc().collect::<String>().to_lowercase();
    if let Some(c) = e.chars().find(|c| is_hidden(*c)) {
        return Err(EmailError::Hidden(c));
    }
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if !valid {
        return Err(EmailError::Malformed);
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_folded_and_composed() {
        assert_eq!(normalize("  Eleni@Example.CY ").unwrap(), "eleni@example.cy");
        // Full-width letters and the "fi" ligature fold to their plain forms.
        assert_eq!(normalize("ＥＬＥＮＩ@example.cy").unwrap(), "eleni@example.cy");
        assert_eq!(normalize("\u{FB01}@example.cy").unwrap(), "fi@example.cy");
        // A decomposed accent composes.
        assert_eq!(normalize("e\u{0301}@example.cy").unwrap(), "\u{00E9}@example.cy");
    }

    #[test]
    fn hidden_and_direction_characters_are_refused_by_name() {
        for (raw, c) in [
            ("a\u{200b}\u{202e}@x.cy", '\u{200b}'),
            ("a\u{202e}@x.cy", '\u{202e}'),
            ("a\u{2066}b@x.cy", '\u{2066}'),
            ("a\u{200d}@x.cy", '\u{200d}'),
            ("a\u{feff}@x.cy", '\u{feff}'),
            ("a\u{00ad}@x.cy", '\u{00ad}'),
            ("a\u{0007}@x.cy", '\u{0007}'),
            ("a b@x.cy", ' '),
        ] {
            assert_eq!(normalize(raw), Err(EmailError::Hidden(c)), "{raw:?}");
        }
        let message = normalize("a\u{202e}@x.cy").unwrap_err().to_string();
        assert!(message.contains("U+202E"), "{message}");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in ["", "@x.cy", "a@", "a@cy", "a@.cy", "a@x.", "a@b@x.cy"] {
            assert_eq!(normalize(raw), Err(EmailError::Malformed), "{raw:?}");
        }
    }
}
