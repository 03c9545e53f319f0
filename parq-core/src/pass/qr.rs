//! QR codes of passes, as SVG or PNG (feature `qr`).
//!
//! A pass's text uses only the QR alphanumeric characters, so it is encoded in a single
//! alphanumeric segment: a version-1 pass fits a version 9 code (53 × 53 modules) at error
//! correction level M, where the same text in byte mode would need version 11.

use qrcode::bits::Bits;
use qrcode::render::svg;
use qrcode::{Color, EcLevel, QrCode, Version};

use crate::error::{Error, Result};

/// Modules of light margin around the code, as the QR specification requires.
pub const QUIET_ZONE: u32 = 4;

/// Error correction of pass codes: level M recovers about 15 % damage, enough for a phone
/// screen or a printed ticket, and keeps the code small.
pub const EC_LEVEL: EcLevel = EcLevel::M;

/// A QR code of a pass's text.
#[derive(Clone)]
pub struct PassQr {
    code: QrCode,
}

impl std::fmt::Debug for PassQr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassQr").field("version", &self.version()).field("width", &self.width()).finish()
    }
}

impl PassQr {
    /// Encodes `text` (a pass's text, or any text of QR alphanumeric characters) in the
    /// smallest code that holds it in alphanumeric mode.
    pub fn new(text: &str) -> Result<Self> {
        if !text.bytes().all(|b| crate::pass::base45::ALPHABET.contains(&b)) {
            return Err(Error::invalid("pass", "only QR alphanumeric characters can be encoded"));
        }
        for v in 1..=40 {
            let mut bits = Bits::new(Version::Normal(v));
            if bits.push_alphanumeric_data(text.as_bytes()).is_ok()
                && bits.push_terminator(EC_LEVEL).is_ok()
                && let Ok(code) = QrCode::with_bits(bits, EC_LEVEL)
            {
                return Ok(Self { code });
            }
        }
        Err(Error::invalid("pass", "too long for a QR code"))
    }

    /// The QR version (1–40): the code is `17 + 4 × version` modules wide.
    pub fn version(&self) -> i16 {
        match self.code.version() {
            Version::Normal(v) | Version::Micro(v) => v,
        }
    }

    /// Modules per side, without the quiet zone.
    pub fn width(&self) -> usize {
        self.code.width()
    }

    /// Whether the module at column `x`, row `y` is dark (without the quiet zone).
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        self.code[(x, y)] == Color::Dark
    }

    /// An SVG document of the code, black on white with the quiet zone, at least `min_size`
    /// pixels (user units) wide.
    pub fn to_svg(&self, min_size: u32) -> String {
        self.code
            .render::<svg::Color<'_>>()
            .quiet_zone(true)
            .min_dimensions(min_size, min_size)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build()
    }

    /// A greyscale PNG of the code with a quiet zone of [`QUIET_ZONE`] modules, each module
    /// `scale` × `scale` pixels (`scale` from 1 to 64).
    pub fn to_png(&self, scale: u32) -> Result<Vec<u8>> {
        if !(1..=64).contains(&scale) {
            return Err(Error::invalid("scale", "must be between 1 and 64 pixels per module"));
        }
        let modules = self.code.width() as u32 + 2 * QUIET_ZONE;
        let side = modules * scale;
        let mut pixels = Vec::with_capacity((side * side) as usize);
        for py in 0..side {
            for px in 0..side {
                let (mx, my) = (px / scale, py / scale);
                let dark = (QUIET_ZONE..modules - QUIET_ZONE).contains(&mx)
                    && (QUIET_ZONE..modules - QUIET_ZONE).contains(&my)
                    && self.is_dark((mx - QUIET_ZONE) as usize, (my - QUIET_ZONE) as usize);
                pixels.push(if dark { 0 } else { 255 });
            }
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let png_error = |e: png::EncodingError| Error::backend("png", e);
        let mut writer = encoder.write_header().map_err(png_error)?;
        writer.write_image_data(&pixels).map_err(png_error)?;
        writer.finish().map_err(png_error)?;
        Ok(out)
    }
}

impl crate::pass::Pass {
    /// The pass's QR code.
    pub fn qr(&self) -> Result<PassQr> {
        PassQr::new(self.text())
    }
}
