//! The server's configuration file, from TOML text (`Config::from_toml_str`, what
//! `Config::load` makes of a file): no panic, errors typed, and an accepted configuration
//! written back as TOML reads back equal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parq_server::Config;

/// The public entry point that reads a configuration text.
fn load(text: &str) -> Result<Config, parq_server::ConfigError> {
    Config::from_toml_str(text)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // `<secret>_file` keys name files to read: the target does not read the machine's files.
    if let Ok(table) = text.parse::<toml::Table>()
        && table.keys().any(|k| k.ends_with("_file") && k != "public_parking_file")
    {
        return;
    }
    if let Ok(config) = load(text) {
        let written = toml::to_string(&config).expect("a configuration writes as TOML");
        let again = load(&written).unwrap_or_else(|e| panic!("{written}\ndoes not read back: {e}"));
        assert_eq!(again, config, "{written}");
    }
});
