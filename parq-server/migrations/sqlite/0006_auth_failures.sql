-- The login throttle: failed attempts per account (`account:<id>`) and per client address
-- (`ip:<address>`), shared by every process on the file. Instants are whole microseconds
-- since the Unix epoch.
CREATE TABLE auth_failures (
    subject TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    last_failure_us INTEGER NOT NULL,
    locked_until_us INTEGER
) STRICT;
CREATE INDEX auth_failures_last ON auth_failures (last_failure_us);
