//! The web page: a live map of the lots, booking, payment and the QR pass. Its files are built
//! into the binary (`parq-server/web/`), so `parq serve` needs nothing beside it, and the page
//! loads nothing from another host unless the configuration names a style or tiles.
//!
//! This module holds the page's files and what it is told about the map ([`WebConfig`]); the
//! routes that serve them are in `routes/web.rs`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, ConfigError};

/// A file of the page.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// An asset from `web/`, served at `/assets/<path>`.
macro_rules! asset {
    ($path:literal, $content_type:literal) => {
        Asset { path: $path, content_type: $content_type, body: include_bytes!(concat!("../web/", $path)) }
    };
}

const ASSETS: &[Asset] = &[
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("vendor/maplibre-gl.js", "text/javascript; charset=utf-8"),
    asset!("vendor/maplibre-gl.css", "text/css; charset=utf-8"),
    asset!("vendor/socket.io.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/LICENSES.md", "text/markdown; charset=utf-8"),
];

const INDEX: &[u8] = include_bytes!("../web/index.html");

/// What the page is told about the map.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = MapConfig)]
pub struct WebConfig {
    /// A MapLibre/Mapbox style URL, when configured.
    pub style_url: Option<String>,
    /// An XYZ raster tile template, when configured.
    pub tile_url: Option<String>,
    /// Where the map starts, `[lon, lat]`.
    pub center: [f64; 2],
    /// Its zoom.
    pub zoom: f64,
    /// Free public parking, as a GeoJSON FeatureCollection of points.
    #[serde(skip)]
    #[schema(ignore)]
    pub public_parking: FeatureCollection,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            style_url: None,
            tile_url: None,
            // Between Nicosia and Limassol: the demo city's two towns.
            center: [33.2, 34.93],
            zoom: 8.6,
            public_parking: feature_collection(Vec::new()),
        }
    }
}

/// One place of free public parking, as a file names it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreePlace {
    name: String,
    lat: f64,
    lon: f64,
    #[serde(default)]
    capacity: Option<u32>,
    #[serde(default)]
    notes: Option<String>,
}

impl WebConfig {
    /// From the configuration; the demo brings its own free public parking when no file is set.
    pub fn load(config: &Config) -> Result<Self, ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid { key: key.into(), message };
        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        let places = match config.public_parking_file.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                parse_public_parking(&text).map_err(|m| bad("public_parking_file", format!("{path}: {m}")))?
            }
            None if config.demo_enabled() => demo_public_parking(),
            None => Vec::new(),
        };
        Ok(Self {
            style_url: nonempty(&config.map_style_url),
            tile_url: nonempty(&config.map_tile_url),
            public_parking: feature_collection(places),
            ..Self::default()
        })
    }
}

/// The GeoJSON FeatureCollection the web page is given for a public parking file's `text`
/// (GeoJSON, or a JSON array of `{name, lat, lon, capacity?, notes?}`), as
/// [`WebConfig::load`] reads it.
///
/// # Errors
/// Why the text is not a list of free public parking places.
pub fn public_parking_geojson(text: &str) -> Result<Value, String> {
    let collection = parse_public_parking(text).map(feature_collection)?;
    serde_json::to_value(collection).map_err(|e| e.to_string())
}

/// Reads free public parking from GeoJSON (a FeatureCollection of Point features whose
/// properties have `name` and optionally `capacity` and `notes`) or from a JSON array of
/// `{name, lat, lon, capacity?, notes?}`.
fn parse_public_parking(text: &str) -> Result<Vec<FreePlace>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if v.is_array() {
        return serde_json::from_value::<Vec<FreePlace>>(v).map_err(|e| e.to_string()).and_then(check);
    }
    if v.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err("must be a GeoJSON FeatureCollection or an array of {name, lat, lon}".into());
    }
    let features = v.get("features").and_then(Value::as_array).ok_or("features must be an array")?;
    let mut out = Vec::with_capacity(features.len());
    for (i, f) in features.iter().enumerate() {
        let geom = f.get("geometry").ok_or(format!("feature {i} has no geometry"))?;
        if geom.get("type").and_then(Value::as_str) != Some("Point") {
            return Err(format!("feature {i} is not a Point"));
        }
        let coords =
            geom.get("coordinates").and_then(Value::as_array).ok_or(format!("feature {i}: coordinates"))?;
        let (Some(lon), Some(lat)) =
            (coords.first().and_then(Value::as_f64), coords.get(1).and_then(Value::as_f64))
        else {
            return Err(format!("feature {i}: coordinates must be [lon, lat]"));
        };
        let props = f.get("properties").cloned().unwrap_or(Value::Null);
        let name = props.get("name").and_then(Value::as_str).ok_or(format!("feature {i} has no name"))?;
        out.push(FreePlace {
            name: name.to_owned(),
            lat,
            lon,
            capacity: props.get("capacity").and_then(Value::as_u64).and_then(|c| u32::try_from(c).ok()),
            notes: props.get("notes").and_then(Value::as_str).map(str::to_owned),
        });
    }
    check(out)
}

fn check(places: Vec<FreePlace>) -> Result<Vec<FreePlace>, String> {
    for p in &places {
        if !(-90.0..=90.0).contains(&p.lat) || !(-180.0..=180.0).contains(&p.lon) {
            return Err(format!("{}: latitude or longitude out of range", p.name));
        }
        if p.name.trim().is_empty() || p.name.len() > 200 {
            return Err("a name must be 1 to 200 characters".into());
        }
    }
    Ok(places)
}

// The GeoJSON below keeps its members in alphabetical order, as when it was built with `json!`.

/// Free public parking: a GeoJSON FeatureCollection of points.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeatureCollection {
    /// The places.
    pub features: Vec<Feature>,
    /// Always `FeatureCollection`.
    #[serde(rename = "type")]
    pub kind: FeatureCollectionType,
}

/// The `type` of a [`FeatureCollection`].
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub enum FeatureCollectionType {
    /// The only one.
    FeatureCollection,
}

/// One place of free public parking.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Feature {
    /// Where.
    pub geometry: Point,
    /// What.
    pub properties: FreePlaceProperties,
    /// Always `Feature`.
    #[serde(rename = "type")]
    pub kind: FeatureType,
}

/// The `type` of a [`Feature`].
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub enum FeatureType {
    /// The only one.
    Feature,
}

/// A GeoJSON point.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// `[longitude, latitude]`.
    pub coordinates: [f64; 2],
    /// Always `Point`.
    #[serde(rename = "type")]
    pub kind: PointType,
}

/// The `type` of a [`Point`].
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub enum PointType {
    /// The only one.
    Point,
}

/// What is known of a place.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FreePlaceProperties {
    /// How many cars fit, when known.
    pub capacity: Option<u32>,
    /// Its name.
    pub name: String,
    /// Anything else, e.g. when it is free.
    pub notes: Option<String>,
}

fn feature_collection(places: Vec<FreePlace>) -> FeatureCollection {
    let features = places
        .into_iter()
        .map(|p| Feature {
            geometry: Point { coordinates: [p.lon, p.lat], kind: PointType::Point },
            properties: FreePlaceProperties { capacity: p.capacity, name: p.name, notes: p.notes },
            kind: FeatureType::Feature,
        })
        .collect();
    FeatureCollection { features, kind: FeatureCollectionType::FeatureCollection }
}

/// The demo's free public parking: sample places in the two demo towns.
fn demo_public_parking() -> Vec<FreePlace> {
    let place = |name: &str, lat: f64, lon: f64, capacity: u32, notes: &str| FreePlace {
        name: name.into(),
        lat,
        lon,
        capacity: Some(capacity),
        notes: Some(notes.into()),
    };
    vec![
        place("Tripoli Bastion", 35.1728, 33.3576, 150, "Free, unmarked; busy on weekdays (demo data)"),
        place("Constanza Bastion", 35.1689, 33.3703, 80, "Free after 15:00 (demo data)"),
        place("Limassol Old Port, east lot", 34.6722, 33.0431, 120, "Free, gravel (demo data)"),
        place("Akti Olympion seafront", 34.6868, 33.0616, 60, "Free street parking (demo data)"),
    ]
}

/// Whether the caller asks for a page (a browser) rather than JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|t| t.trim().starts_with("text/html")))
}

/// The page itself.
pub fn index_page() -> Response {
    page(INDEX, "text/html; charset=utf-8")
}

/// The page's file at `path` (under `/assets/`), if there is one.
pub fn asset(path: &str) -> Option<Response> {
    ASSETS.iter().find(|a| a.path == path).map(|a| page(a.body, a.content_type))
}

fn page(body: &'static [u8], content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_parking_reads_geojson_and_arrays_and_refuses_the_rest() {
        let geo = r#"{"type":"FeatureCollection","features":[{"type":"Feature",
            "geometry":{"type":"Point","coordinates":[33.36,35.17]},"properties":{"name":"A","capacity":5}}]}"#;
        let p = parse_public_parking(geo).unwrap();
        assert_eq!((p[0].name.as_str(), p[0].lat, p[0].lon, p[0].capacity), ("A", 35.17, 33.36, Some(5)));
        let arr = r#"[{"name":"B","lat":34.6,"lon":33.0,"notes":"free"}]"#;
        assert_eq!(parse_public_parking(arr).unwrap()[0].notes.as_deref(), Some("free"));
        for bad in [
            "nope",
            r#"{"type":"Feature"}"#,
            r#"[{"name":"C","lat":95,"lon":0}]"#,
            r#"{"type":"FeatureCollection","features":[{"geometry":{"type":"LineString","coordinates":[]}}]}"#,
        ] {
            assert!(parse_public_parking(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_geojson_of_a_file_reads_as_itself() {
        let arr = r#"[{"name":"B","lat":34.6,"lon":33.0,"notes":"free"}]"#;
        let geo = public_parking_geojson(arr).unwrap();
        assert_eq!(geo["features"][0]["geometry"]["coordinates"], serde_json::json!([33.0, 34.6]));
        assert_eq!(public_parking_geojson(&geo.to_string()).unwrap(), geo);
        assert!(public_parking_geojson("nope").is_err());
    }
}
