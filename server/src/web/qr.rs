//! QR codes as SVG, drawn by imboxd so that the pages load nothing else.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The smallest side of a drawn code, in pixels: large enough for a phone
/// camera at arm's length; pages scale it down on narrow screens.
const MIN_SIDE: u32 = 296;

/// Why a QR code could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text does not fit in a QR code.
    #[error("cannot encode this text as a QR code: {0}")]
    Encode(#[from] qrcode::types::QrError),
}

/// `text` as a black-on-white SVG QR code with its quiet zone, at medium
/// error correction (a pairing URI fits in about 60 modules).
pub fn svg(text: &str) -> Result<String, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(MIN_SIDE, MIN_SIDE)
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pairing_uri_becomes_an_svg() {
        let uri = format!(
            "imbox:pair?v=1&fp=sha256:{}&host=192.0.2.1&quic=443&wss=443&invite={}",
            "A".repeat(43),
            "b".repeat(43)
        );
        let drawn = svg(&uri).unwrap_or_default();
        assert!(drawn.contains("<svg") && drawn.contains("#000000"));
        assert!(svg(&"x".repeat(8000)).is_err(), "too long for any QR code");
    }
}
