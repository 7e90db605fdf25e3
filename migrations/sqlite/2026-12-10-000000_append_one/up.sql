-- Nothing: SQLite has no stored procedures (its append is one closure on the store's
-- connection, crates/model/src/append.rs). Kept so both backends list the same migrations.
SELECT 1;
