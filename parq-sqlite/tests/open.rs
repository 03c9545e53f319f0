//! Opening a file that cannot or must not be used gives a typed error and leaves the file as
//! it was; opening a good one keeps what it holds.

mod common;

use std::fs;

use common::{Place, TestDir};
use parq_core::ReservationStore;
use parq_sqlite::rusqlite::Connection;
use parq_sqlite::{OpenError, SCHEMA_VERSION, SqliteOptions, SqliteStore};

/// A database with one confirmed hold in it, closed again: its reservation id.
async fn seeded(db: &std::path::Path) -> parq_core::ReservationId {
    let store = SqliteStore::open(db).expect("open");
    let p = Place::new(&store).await;
    let w = store.hold(p.request(0, 1, 1), common::now()).await.expect("hold");
    w.reservation.id
}

fn count(path: &std::path::Path, sql: &str) -> i64 {
    let c = Connection::open(path).expect("a plain connection");
    c.query_row(sql, [], |r| r.get(0)).expect("a count")
}

#[tokio::test]
async fn a_new_file_is_created_in_wal_mode_with_the_schema_version() {
    let dir = TestDir::new();
    let store = SqliteStore::open(dir.db()).expect("open");
    assert_eq!(store.path(), dir.db());
    let c = Connection::open(dir.db()).unwrap();
    let mode: String = c.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = c.query_row("SELECT max(version) FROM parq_schema", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let app: i32 = c.pragma_query_value(None, "application_id", |r| r.get(0)).unwrap();
    assert_eq!(app, 0x7061_7271, "the file says it is ParQ's");
}

#[tokio::test]
async fn reopening_keeps_the_data_and_applies_nothing_twice() {
    let dir = TestDir::new();
    let id = seeded(&dir.db()).await;
    let store = SqliteStore::open_async(dir.db(), SqliteOptions::default()).await.expect("reopen");
    assert_eq!(store.get(id).await.unwrap().id, id);
    assert_eq!(count(&dir.db(), "SELECT count(*) FROM parq_schema"), SCHEMA_VERSION);
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = TestDir::new();
    let id = seeded(&dir.db()).await;
    let newer = SCHEMA_VERSION + 1;
    Connection::open(dir.db())
        .unwrap()
        .execute(
            "INSERT INTO parq_schema (version, name, applied_at) VALUES (?1, 'from the future', '2031-01-01')",
            [newer],
        )
        .unwrap();
    match SqliteStore::open(dir.db()) {
        Err(OpenError::NewerSchema { found, supported, path }) => {
            assert_eq!((found, supported, path), (newer, SCHEMA_VERSION, dir.db()));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let e = parq_core::Error::from(SqliteStore::open(dir.db()).unwrap_err());
    assert!(matches!(e, parq_core::Error::Unavailable { retryable: false, .. }), "{e:?}");
    assert!(e.to_string().contains("newer"), "the message says why: {e}");
    assert_eq!(count(&dir.db(), "SELECT count(*) FROM parq_schema"), SCHEMA_VERSION + 1);
    let kept = count(&dir.db(), &format!("SELECT count(*) FROM reservations WHERE id = '{}'", id.0));
    assert_eq!(kept, 1, "the data is still there");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_kept() {
    let dir = TestDir::new();
    let junk: Vec<u8> = b"these are a driver's notes, not a database\n".repeat(200);
    fs::write(dir.db(), &junk).unwrap();
    match SqliteStore::open(dir.db()) {
        Err(OpenError::Corrupt { path, .. }) => assert_eq!(path, dir.db()),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(fs::read(dir.db()).unwrap(), junk, "never a fresh database over the old file");
}

#[tokio::test]
async fn a_damaged_database_is_refused_by_the_integrity_check() {
    let dir = TestDir::new();
    let store = SqliteStore::open(dir.db()).expect("open");
    let p = Place::new(&store).await;
    for h in 0..200 {
        store.hold(p.request((h % 4) as usize, h, 1), common::now()).await.expect("hold");
    }
    drop(store);
    // Every page after the first (the header and the schema) is overwritten.
    let mut bytes = fs::read(dir.db()).unwrap();
    assert!(bytes.len() > 8192, "the database has more than one page");
    for b in &mut bytes[4096..] {
        *b = 0xA5;
    }
    fs::write(dir.db(), &bytes).unwrap();
    match SqliteStore::open_with(dir.db(), SqliteOptions::default().integrity_check(true)) {
        Err(OpenError::Corrupt { path, .. }) => assert_eq!(path, dir.db()),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(fs::read(dir.db()).unwrap(), bytes, "left as it was");
}

#[tokio::test]
async fn another_applications_database_is_refused() {
    let dir = TestDir::new();
    Connection::open(dir.db())
        .unwrap()
        .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x');")
        .unwrap();
    match SqliteStore::open(dir.db()) {
        Err(OpenError::Foreign { path }) => assert_eq!(path, dir.db()),
        other => panic!("expected Foreign, got {other:?}"),
    }
    assert_eq!(count(&dir.db(), "SELECT count(*) FROM notes"), 1);
    assert_eq!(
        count(&dir.db(), "SELECT count(*) FROM sqlite_schema WHERE name = 'parq_schema'"),
        0,
        "no schema added"
    );
}

#[tokio::test]
async fn a_missing_or_unusable_directory_is_refused() {
    let dir = TestDir::new();
    let missing = dir.path().join("no-such-directory").join("parq.db");
    assert!(matches!(SqliteStore::open(&missing), Err(OpenError::CannotOpen { .. })), "a missing directory");
    assert!(!missing.parent().unwrap().exists(), "nothing was created");

    let file = dir.path().join("a-file");
    fs::write(&file, b"").unwrap();
    let under_file = file.join("parq.db");
    assert!(
        matches!(SqliteStore::open(&under_file), Err(OpenError::CannotOpen { .. })),
        "a file as directory"
    );

    assert!(
        matches!(SqliteStore::open(dir.path()), Err(OpenError::CannotOpen { .. })),
        "a directory as file"
    );
    let e = parq_core::Error::from(SqliteStore::open(&missing).unwrap_err());
    assert!(e.to_string().contains("directory must exist and be writable"), "{e}");
}

/// The effective user id of this process.
fn euid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("Uid:")).expect("a Uid line");
    line.split_whitespace().nth(2).expect("the effective uid").parse().expect("a number")
}

/// What a user without write permission meets (run as that user).
fn refused_without_permission(root: &std::path::Path) {
    match SqliteStore::open(root.join("read-only-dir").join("parq.db")) {
        Err(OpenError::CannotOpen { .. }) => {}
        other => panic!("a new file in a read-only directory: expected CannotOpen, got {other:?}"),
    }
    match SqliteStore::open(root.join("writable-dir").join("parq.db")) {
        Err(OpenError::ReadOnly { .. }) => {}
        other => panic!("a read-only file: expected ReadOnly, got {other:?}"),
    }
    match SqliteStore::open(root.join("locked-dir").join("parq.db")) {
        Err(e @ (OpenError::CannotOpen { .. } | OpenError::ReadOnly { .. })) => {
            assert!(e.to_string().contains("directory"), "the message names the directory: {e}")
        }
        other => panic!("a writable file in a read-only directory (no room for its WAL): got {other:?}"),
    }
}

/// Permissions are checked as an unprivileged user: root writes anywhere, so as root the test
/// runs its checks in a child process of this executable as `nobody` (through `setpriv`).
#[tokio::test]
async fn a_directory_or_file_without_write_permission_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    if std::env::var("PARQ_SQLITE_CHILD").as_deref() == Ok("unprivileged") {
        return refused_without_permission(std::path::Path::new(&std::env::var("PARQ_SQLITE_ROOT").unwrap()));
    }
    let dir = TestDir::new();
    let root = dir.path();
    let mode = |p: &std::path::Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    fs::create_dir(root.join("read-only-dir")).unwrap();
    for sub in ["writable-dir", "locked-dir"] {
        fs::create_dir(root.join(sub)).unwrap();
        seeded(&root.join(sub).join("parq.db")).await;
        assert!(!root.join(sub).join("parq.db-wal").exists(), "closed cleanly");
    }
    mode(root, 0o755);
    mode(&root.join("read-only-dir"), 0o555);
    mode(&root.join("writable-dir"), 0o777);
    mode(&root.join("writable-dir").join("parq.db"), 0o444);
    mode(&root.join("locked-dir"), 0o555);
    mode(&root.join("locked-dir").join("parq.db"), 0o666);
    let before: Vec<Vec<u8>> = ["writable-dir", "locked-dir"]
        .iter()
        .map(|d| fs::read(root.join(d).join("parq.db")).unwrap())
        .collect();

    if euid() == 0 {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["a_directory_or_file_without_write_permission_is_refused", "--exact", "--nocapture"])
            .env("PARQ_SQLITE_CHILD", "unprivileged")
            .env("PARQ_SQLITE_ROOT", root)
            .output()
            .expect("setpriv (util-linux) runs the checks as nobody");
        assert!(
            out.status.success(),
            "the unprivileged checks failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        refused_without_permission(root);
    }
    let after: Vec<Vec<u8>> = ["writable-dir", "locked-dir"]
        .iter()
        .map(|d| fs::read(root.join(d).join("parq.db")).unwrap())
        .collect();
    assert!(before == after, "the files were left as they were");
    assert!(!root.join("read-only-dir").join("parq.db").exists(), "nothing was created");
    mode(&root.join("locked-dir"), 0o755);
}
