-- The login throttle: failed attempts per account (`account:<id>`) and per client address
-- (`ip:<address>`), shared by every replica. Instants are whole microseconds since the epoch.
CREATE TABLE {schema}.auth_failures (
    subject text PRIMARY KEY,
    failures integer NOT NULL,
    last_failure_us bigint NOT NULL,
    locked_until_us bigint
);
CREATE INDEX auth_failures_last ON {schema}.auth_failures (last_failure_us);
