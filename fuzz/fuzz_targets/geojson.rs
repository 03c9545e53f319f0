//! The public parking file (GeoJSON, or a JSON array of places) the web page shows: no
//! panic, and the GeoJSON made of an accepted file is accepted in turn and gives itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parq_server::web::public_parking_geojson;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(geojson) = public_parking_geojson(text) {
        let written = geojson.to_string();
        let again = public_parking_geojson(&written).unwrap_or_else(|e| panic!("{written}\nis refused: {e}"));
        assert_eq!(again, geojson);
    }
});
