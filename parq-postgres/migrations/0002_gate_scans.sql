-- The id of the reading that let a driver in or out, so a repeated reading counts once.
ALTER TABLE sessions ADD COLUMN entry_scan text, ADD COLUMN exit_scan text;
