-- The demo city's API keys, kept so that a restart can print them again. Only the demo's
-- keys are kept in the clear; every other API key is stored as its digest.
CREATE TABLE demo_keys (
    role TEXT PRIMARY KEY NOT NULL CHECK (role IN ('operator', 'gate')),
    key TEXT NOT NULL
) STRICT;
