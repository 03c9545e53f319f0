//! Passes: a pass's QR text decoded into its claims (verified against public keys), and its QR
//! code as PNG or SVG — parq-core's `PublicKeys::verify` and `PassQr`.

use parq_core::pass::qr::PassQr;

use crate::error::ParqError;
use crate::gate::parse_keys_json;
use crate::types::{self, PassClaims, PublicKeyRecord};

/// Checks a pass's text against `public_keys` and returns what it says.
///
/// # Errors
/// `InvalidPass` with `fault` `Malformed` (truncated, not base45, another format), `UnknownKey`
/// (with the `keyId` the pass names) or `BadSignature` (altered or forged); `Invalid` for a
/// key that cannot be read.
#[uniffi::export]
pub fn verify_pass(pass_text: String, public_keys: Vec<PublicKeyRecord>) -> Result<PassClaims, ParqError> {
    Ok(types::public_keys(&public_keys)?.verify(&pass_text)?.into())
}

/// As [`verify_pass`], with the keys as the JSON of `GET /api/v1/passes/keys`.
///
/// # Errors
/// As [`verify_pass`]; `Invalid` (field `public_keys`) for JSON that is not a key list.
#[uniffi::export]
pub fn verify_pass_json(pass_text: String, keys_json: String) -> Result<PassClaims, ParqError> {
    Ok(parse_keys_json(&keys_json)?.verify(&pass_text)?.into())
}

/// The key list of `GET /api/v1/passes/keys` (its JSON) as records.
///
/// # Errors
/// `Invalid` (field `public_keys`) for JSON that is not a key list.
#[uniffi::export]
pub fn public_keys_from_json(keys_json: String) -> Result<Vec<PublicKeyRecord>, ParqError> {
    Ok(types::public_key_records(&parse_keys_json(&keys_json)?))
}

/// The pass's QR code as a greyscale PNG, `scale` pixels per module (1 to 64), with the quiet
/// zone. The text is encoded as it is; it need not be verified first.
///
/// # Errors
/// `Invalid` for text with characters a pass never has, or a scale out of range.
#[uniffi::export(default(scale = 8))]
pub fn pass_qr_png(pass_text: String, scale: u32) -> Result<Vec<u8>, ParqError> {
    Ok(PassQr::new(pass_text.trim_matches(['\r', '\n']))?.to_png(scale)?)
}

/// The pass's QR code as an SVG document, at least `min_size` user units wide.
///
/// # Errors
/// `Invalid` for text with characters a pass never has.
#[uniffi::export(default(min_size = 256))]
pub fn pass_qr_svg(pass_text: String, min_size: u32) -> Result<String, ParqError> {
    Ok(PassQr::new(pass_text.trim_matches(['\r', '\n']))?.to_svg(min_size))
}
