//! What a Socket.IO client sends: the `auth` payload of its connection and the
//! `subscribe` / `unsubscribe` payloads. The first byte chooses which; the rest is JSON.
//! Accepted payloads write back and read back equal; a token is a trimmed string.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parq_server::live::{Subscribe, Unsubscribe, auth_token};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(json: &[u8]) {
    // As the handlers get it: JSON, then the payload type.
    let direct = serde_json::from_slice::<T>(json);
    let via_value = serde_json::from_slice::<serde_json::Value>(json).map(serde_json::from_value::<T>);
    if let Ok(v) = &direct {
        let again: T = serde_json::from_slice(&serde_json::to_vec(v).unwrap()).unwrap();
        assert_eq!(&again, v);
        if let Ok(Ok(w)) = &via_value {
            assert_eq!(w, v, "the payload reads differently through a JSON value");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, json)) = data.split_first() else { return };
    match mode % 3 {
        0 => round_trip::<Subscribe>(json),
        1 => round_trip::<Unsubscribe>(json),
        _ => {
            let Ok(auth) = serde_json::from_slice::<serde_json::Value>(json) else { return };
            let token = auth.get("token");
            match auth_token(Some(&auth)) {
                Ok(Some(t)) => {
                    assert_eq!(t, t.trim());
                    assert_eq!(token.and_then(|v| v.as_str()).map(str::trim), Some(t.as_str()));
                }
                Ok(None) => assert!(token.is_none_or(serde_json::Value::is_null)),
                Err(_) => assert!(token.is_some_and(|t| !t.is_null() && !t.is_string())),
            }
            assert_eq!(auth_token(None), Ok(None));
        }
    }
});
