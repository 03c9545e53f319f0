//! Licence plates typed by drivers or read by cameras: `normalize_plate` accepts only a
//! canonical form of at most `MAX_PLATE_LEN` letters and digits, and is idempotent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parq_core::Error;
use parq_core::pass::{MAX_PLATE_LEN, normalize_plate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match normalize_plate(text) {
        Ok(plate) => {
            let n = plate.chars().count();
            assert!((1..=MAX_PLATE_LEN).contains(&n), "{plate:?} has {n} characters");
            assert!(
                plate.chars().all(|c| c.is_alphabetic() || c.is_ascii_digit()),
                "{plate:?} has a character other than a letter or a digit"
            );
            let again = normalize_plate(&plate);
            assert_eq!(
                again.as_ref().ok(),
                Some(&plate),
                "normalising {text:?} is not idempotent: {again:?}"
            );
        }
        Err(e) => assert!(matches!(e, Error::Invalid { field: "plate", .. }), "{e:?}"),
    }
});
