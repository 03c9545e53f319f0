//! Typed identifiers. Every id is a UUIDv7, so ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new id, ordered by creation time (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// The id's UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "_{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|e| crate::Error::invalid(stringify!($name), e.to_string()))
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

id_type!(
    /// An operator (tenant): owns lots, keys and policies.
    OperatorId,
    "op"
);
id_type!(
    /// A car park or street zone.
    LotId,
    "lot"
);
id_type!(
    /// One addressable place in a lot.
    SpotId,
    "spot"
);
id_type!(
    /// A reservation (the entitlement to a spot for a window).
    ReservationId,
    "res"
);
id_type!(
    /// A driver or any other account.
    UserId,
    "usr"
);
id_type!(
    /// A gate session (one entry and, later, its exit).
    SessionId,
    "ses"
);

/// A hasher for maps keyed by ParQ ids. The ids are UUIDs whose last eight bytes are random
/// (UUIDv7) or chosen by the operator who owns the map, so folding them with one
/// multiplication spreads them well at a fraction of SipHash's cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// `BuildHasher` of [`IdHasher`].
pub type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// A `HashMap` keyed by ids.
pub type IdMap<K, V> = std::collections::HashMap<K, V, IdHash>;
