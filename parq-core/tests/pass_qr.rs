//! QR codes of passes, read back by a real barcode reader (`zbarimg`, Debian `zbar-tools`).

use std::path::PathBuf;
use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use parq_core::pass::qr::{PassQr, QUIET_ZONE};
use parq_core::pass::{
    Decision, Entitlement, GatePolicy, GateVerifier, KeyId, KeySeed, PassKeyring, ReentryPolicy, Scan,
};
use parq_core::{LotId, ReservationId, SpotId, Window};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn issue() -> (PassKeyring, Entitlement, parq_core::pass::Pass) {
    let ring = PassKeyring::new(KeyId(3), KeySeed::from_bytes([5; 32]));
    let ent = Entitlement {
        reservation: ReservationId::new(),
        lot: LotId::new(),
        spot: SpotId::new(),
        window: Window::new(ts("2030-05-01T09:00:00Z"), ts("2030-05-01T11:00:00Z")).unwrap(),
    };
    let pass = ring.issue(ent).unwrap();
    (ring, ent, pass)
}

/// Reads every barcode in the image at `path` with `zbarimg`, as a gate's reader would.
fn zbarimg(path: &std::path::Path) -> String {
    let out = Command::new("zbarimg").args(["--raw", "-q"]).arg(path).output().unwrap_or_else(|e| {
        panic!("could not run `zbarimg` ({e}); install it with `apt-get install -y zbar-tools`")
    });
    assert!(
        out.status.success(),
        "zbarimg failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("zbarimg printed UTF-8")
}

fn temp_png(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("parq-{}-{name}.png", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_png_rendered_by_parq_reads_back_as_the_pass_and_opens_the_gate() {
    let (ring, ent, pass) = issue();
    let png = pass.qr().unwrap().to_png(4).unwrap();
    let path = temp_png("pass", &png);
    let read = zbarimg(&path);
    std::fs::remove_file(&path).unwrap();

    // zbarimg ends its output with a newline; the code itself holds exactly the pass.
    assert_eq!(read.strip_suffix('\n'), Some(pass.text()));

    let gate = GateVerifier::new(
        ring.public_keys(),
        GatePolicy { grace: SignedDuration::from_mins(10), reentry: ReentryPolicy::NotAllowed },
    );
    assert_eq!(gate.scan(&read, &Scan::entry(ent.lot, ts("2030-05-01T09:05:00Z"))), Decision::Allow);
}

#[test]
fn the_smallest_png_scale_still_reads_back() {
    let (_, _, pass) = issue();
    let qr = pass.qr().unwrap();
    let path = temp_png("scale2", &qr.to_png(2).unwrap());
    let read = zbarimg(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(read.trim_end(), pass.text());
}

#[test]
fn the_code_is_small_because_it_uses_alphanumeric_mode() {
    let (_, _, pass) = issue();
    let qr = pass.qr().unwrap();
    // 224 alphanumeric characters fit version 9 at level M; byte mode would need version 11.
    assert_eq!(qr.version(), 9);
    assert_eq!(qr.width(), 53);

    let png = qr.to_png(3).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let reader = decoder.read_info().unwrap();
    let side = (53 + 2 * QUIET_ZONE) * 3;
    assert_eq!((reader.info().width, reader.info().height), (side, side));
}

#[test]
fn the_svg_is_a_complete_document_with_a_quiet_zone() {
    let (_, _, pass) = issue();
    let svg = pass.qr().unwrap().to_svg(244);
    assert!(svg.starts_with("<?xml"), "{svg:.80}");
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    // 53 modules and 2 × 4 modules of quiet zone, 4 user units each.
    assert!(svg.contains(r#"width="244""#) && svg.contains(r#"height="244""#), "{svg:.300}");
}

#[test]
fn text_outside_the_alphanumeric_set_is_not_encoded() {
    assert!(PassQr::new("lower case").is_err());
    assert!(PassQr::new(&"A".repeat(5000)).is_err());
}
