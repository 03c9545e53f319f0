//! The toolkit other crates use for their tables: a migration set applies once per schema, in
//! its own table, beside the store's; driver errors are classified by SQLSTATE.

mod common;

use common::TestStore;
use parq_postgres::migrate::{self, Migration, Migrations};
use parq_postgres::{ErrorClass, classify, db_error};

const NOTES: Migrations<'static> = Migrations {
    table: "notes_migrations",
    lock: 0x6e6f_7465_735f_6d67,
    prelude: "",
    list: &[
        Migration { version: 1, name: "notes", sql: "CREATE TABLE {schema}.notes (id int PRIMARY KEY)" },
        // Unqualified names resolve in the schema too.
        Migration { version: 2, name: "tags", sql: "CREATE TABLE tags (note int REFERENCES notes (id))" },
    ],
};

#[tokio::test]
async fn a_set_applies_once_in_its_own_table_and_says_how_far_a_schema_is() {
    let t = TestStore::new(2).await;
    let schema = t.schema();
    let mut c = common::connect(schema).await;
    assert_eq!(migrate::version(&c, schema, &NOTES).await.unwrap(), 0);
    assert_eq!(migrate::version(&c, "parq_no_such_schema", &NOTES).await.unwrap(), 0);

    let applied = migrate::run(&mut c, schema, &NOTES).await.unwrap();
    assert_eq!(applied.iter().map(|a| (a.version, a.name)).collect::<Vec<_>>(), [(1, "notes"), (2, "tags")]);
    assert!(migrate::run(&mut c, schema, &NOTES).await.unwrap().is_empty(), "nothing twice");
    assert_eq!(migrate::version(&c, schema, &NOTES).await.unwrap(), NOTES.latest());
    assert_eq!(migrate::count(&c, schema, &NOTES).await.unwrap(), 2);
    // The store's own set is recorded apart, untouched.
    assert_eq!(migrate::version(&c, schema, &migrate::STORE).await.unwrap(), migrate::STORE.latest());
    assert!(migrate::run(&mut c, schema, &migrate::STORE).await.unwrap().is_empty());

    // A unique violation is told apart by its SQLSTATE, and is not retryable.
    c.execute(&format!("INSERT INTO \"{schema}\".notes VALUES (1)"), &[]).await.unwrap();
    let e = c.execute(&format!("INSERT INTO \"{schema}\".notes VALUES (1)"), &[]).await.unwrap_err();
    assert_eq!(classify(&e), ErrorClass::Unique);
    let core = db_error(e);
    assert!(!core.is_retryable(), "{core:?}");
    assert_eq!(core.code(), "backend");
}

#[tokio::test]
async fn a_terminated_backend_is_a_retryable_connection_error() {
    let t = TestStore::new(1).await;
    let c = common::connect(t.schema()).await;
    let e = c.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())").await.unwrap_err();
    assert_eq!(classify(&e), ErrorClass::Connection, "{e:?}");
    assert!(db_error(e).is_retryable());
}
