//! The JSON bodies of the HTTP API's requests, as `ApiJson` reads them (serde_json from the
//! body's bytes). The first byte chooses the type. Every refusal is a typed serde error; the
//! types that also write (the core types some bodies are made of) read back equal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parq_core::{CancellationPolicy, OpeningHours, RateTable, SpotAttributes, SpotFilter, Window};
use parq_server::routes::views::{ExtendBody, HoldBody};
use parq_server::routes::{
    BlackoutsBody, ConfirmBody, KeyBody, LoginBody, LotBody, PayBody, RegisterBody, ScanBody, SpotBody,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn read<T: DeserializeOwned>(json: &[u8]) -> Option<T> {
    serde_json::from_slice::<T>(json).ok()
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(json: &[u8]) {
    if let Some(v) = read::<T>(json) {
        let written = serde_json::to_vec(&v).unwrap();
        let again: T = serde_json::from_slice(&written).unwrap_or_else(|e| {
            panic!("{v:?} wrote {:?}, which does not read: {e}", String::from_utf8_lossy(&written))
        });
        assert_eq!(again, v);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, json)) = data.split_first() else { return };
    match which % 17 {
        0 => drop(read::<RegisterBody>(json)),
        1 => drop(read::<LoginBody>(json)),
        2 => drop(read::<ConfirmBody>(json)),
        3 => drop(read::<HoldBody>(json)),
        4 => drop(read::<ExtendBody>(json)),
        5 => drop(read::<ScanBody>(json)),
        6 => drop(read::<LotBody>(json)),
        7 => drop(read::<SpotBody>(json)),
        8 => drop(read::<BlackoutsBody>(json)),
        9 => drop(read::<KeyBody>(json)),
        10 => drop(read::<PayBody>(json)),
        11 => round_trip::<RateTable>(json),
        12 => round_trip::<Window>(json),
        13 => round_trip::<SpotFilter>(json),
        14 => round_trip::<SpotAttributes>(json),
        15 => round_trip::<OpeningHours>(json),
        _ => round_trip::<CancellationPolicy>(json),
    }
});
