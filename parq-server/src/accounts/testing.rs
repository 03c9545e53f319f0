//! Not part of the API: the [`AccountStore`](super::AccountStore) conformance cases, which every
//! account store runs with [`account_conformance!`](crate::account_conformance)
//! (`MemoryAccounts`, `SqliteAccounts` and `PgAccounts` in `tests/accounts.rs`). Each case takes a fresh, empty store.
//!
//! The cases are listed once, in `__account_cases!`; a unit test compares the list with the
//! `pub async fn` items of this module.

use jiff::{SignedDuration, Timestamp};
use parq_core::{Error, OperatorId, UserId};
use uuid::Uuid;

use super::{Account, Accounts, ApiKeyRecord, LockPolicy, Role, SessionRecord, Throttle, TotpEnrolment};

/// A whole-second instant (what every backend keeps exactly).
fn t0() -> Timestamp {
    Timestamp::from_second(1_900_000_000).expect("in range")
}

fn account(email: &str) -> Account {
    Account {
        id: UserId::new(),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        role: Role::Driver,
        operator: None,
        totp: None,
        recovery_codes: vec![],
        totp_last_step: 0,
        created_at: t0(),
    }
}

async fn created(store: &Accounts, email: &str) -> Account {
    let a = account(email);
    assert!(store.create_user(&a).await.unwrap(), "created {email}");
    a
}

/// A user is created once per email, atomically: of concurrent creations with one email,
/// exactly one succeeds; lookups find it by id and by email, and nothing else.
pub async fn account_create_is_unique_by_email(store: Accounts) {
    let a = created(&store, "eleni@example.cy").await;
    assert_eq!(store.user(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.user_by_email("eleni@example.cy").await.unwrap(), Some(a.clone()));
    assert!(!store.create_user(&account("eleni@example.cy")).await.unwrap(), "the email is taken");
    assert_eq!(store.user_by_email("eleni@example.cy").await.unwrap(), Some(a), "the first one stays");
    assert_eq!(store.user(UserId::new()).await.unwrap(), None);
    assert_eq!(store.user_by_email("nobody@example.cy").await.unwrap(), None);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create_user(&account("race@example.cy")).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(won, 1, "one of 16 concurrent creations with one email");
}

/// Every field of an account comes back as it was stored.
pub async fn account_round_trips_every_field(store: Accounts) {
    let mut a = account("nikos@example.cy");
    a.role = Role::Operator;
    a.operator = Some(OperatorId::new());
    a.totp = Some(TotpEnrolment { secret: "JBSWY3DPEHPK3PXP".into(), confirmed: true });
    a.recovery_codes = vec!["0a".repeat(32), "1b".repeat(32)];
    a.totp_last_step = 7;
    assert!(store.create_user(&a).await.unwrap());
    assert_eq!(store.user(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.user_by_email(&a.email).await.unwrap(), Some(a));
}

/// `set_mfa` replaces the enrolment and the recovery codes; an unknown user is `NotFound`.
pub async fn account_set_mfa_replaces_enrolment_and_codes(store: Accounts) {
    let a = created(&store, "maria@example.cy").await;
    let totp = TotpEnrolment { secret: "KRSXG5CTMVRXEZLU".into(), confirmed: false };
    let codes = vec!["aa".repeat(32), "bb".repeat(32)];
    store.set_mfa(a.id, Some(totp.clone()), codes.clone()).await.unwrap();
    let got = store.user(a.id).await.unwrap().unwrap();
    assert_eq!((got.totp, got.recovery_codes), (Some(totp.clone()), codes));
    assert!(!store.user(a.id).await.unwrap().unwrap().mfa_enabled(), "not before it is confirmed");
    let confirmed = TotpEnrolment { confirmed: true, ..totp };
    store.set_mfa(a.id, Some(confirmed.clone()), vec!["cc".repeat(32)]).await.unwrap();
    let got = store.user(a.id).await.unwrap().unwrap();
    assert!(got.mfa_enabled());
    assert_eq!((got.totp, got.recovery_codes), (Some(confirmed), vec!["cc".repeat(32)]), "replaced");
    store.set_mfa(a.id, None, vec![]).await.unwrap();
    let got = store.user(a.id).await.unwrap().unwrap();
    assert_eq!((got.totp, got.recovery_codes), (None, vec![]), "cleared");
    assert!(matches!(store.set_mfa(UserId::new(), None, vec![]).await, Err(Error::NotFound { .. })));
}

/// A TOTP step is accepted once, and never one at or before the last accepted, even by
/// concurrent logins.
pub async fn account_totp_step_accepted_once(store: Accounts) {
    let a = created(&store, "andreas@example.cy").await;
    assert!(store.accept_totp_step(a.id, 10).await.unwrap());
    assert!(!store.accept_totp_step(a.id, 10).await.unwrap(), "the same step twice");
    assert!(!store.accept_totp_step(a.id, 9).await.unwrap(), "an earlier step");
    assert!(store.accept_totp_step(a.id, 11).await.unwrap());
    assert_eq!(store.user(a.id).await.unwrap().unwrap().totp_last_step, 11);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.accept_totp_step(a.id, 20).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(won, 1, "one of 16 concurrent logins with one code");
    assert!(matches!(store.accept_totp_step(UserId::new(), 1).await, Err(Error::NotFound { .. })));
}

/// A recovery code is used once, even by concurrent logins; an unknown code is refused.
pub async fn account_recovery_code_used_once(store: Accounts) {
    let a = created(&store, "sofia@example.cy").await;
    let (x, y) = ("aa".repeat(32), "bb".repeat(32));
    store.set_mfa(a.id, None, vec![x.clone(), y.clone()]).await.unwrap();
    assert!(store.use_recovery_code(a.id, &x).await.unwrap());
    assert!(!store.use_recovery_code(a.id, &x).await.unwrap(), "used once");
    assert!(!store.use_recovery_code(a.id, &"cc".repeat(32)).await.unwrap(), "not one of the user's");
    let other = created(&store, "other@example.cy").await;
    assert!(!store.use_recovery_code(other.id, &y).await.unwrap(), "not another user's code");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, y) = (store.clone(), y.clone());
            tokio::spawn(async move { store.use_recovery_code(a.id, &y).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(won, 1, "one of 16 concurrent logins with one code");
    assert!(store.user(a.id).await.unwrap().unwrap().recovery_codes.is_empty());
}

/// Sessions are found by token digest until they expire (an expired one is never returned),
/// are replaced by a put with the same digest, and end when deleted.
pub async fn account_sessions_expire_and_end(store: Accounts) {
    let a = created(&store, "petros@example.cy").await;
    let s = SessionRecord {
        token_hash: "5e".repeat(32),
        user: a.id,
        created_at: t0(),
        expires_at: t0() + SignedDuration::from_hours(1),
    };
    store.put_session(&s).await.unwrap();
    assert_eq!(store.session(&s.token_hash, t0()).await.unwrap(), Some(s.clone()));
    let before_end = s.expires_at - SignedDuration::from_secs(1);
    assert_eq!(store.session(&s.token_hash, before_end).await.unwrap(), Some(s.clone()));
    assert_eq!(store.session(&s.token_hash, s.expires_at).await.unwrap(), None, "expired at its end");
    let longer = SessionRecord { expires_at: t0() + SignedDuration::from_hours(3), ..s.clone() };
    store.put_session(&longer).await.unwrap();
    assert_eq!(store.session(&s.token_hash, s.expires_at).await.unwrap(), Some(longer), "replaced");
    assert_eq!(store.session(&"00".repeat(32), t0()).await.unwrap(), None);
    store.delete_session(&s.token_hash).await.unwrap();
    assert_eq!(store.session(&s.token_hash, t0()).await.unwrap(), None, "ended");
    store.delete_session(&s.token_hash).await.expect("ending an ended session is not an error");
}

/// API keys are found by digest; a put with the same digest replaces what it grants.
pub async fn account_api_keys_round_trip(store: Accounts) {
    let operator = OperatorId::new();
    let key = ApiKeyRecord {
        id: Uuid::now_v7(),
        name: "north gate".into(),
        key_hash: "ab".repeat(32),
        role: Role::Gate,
        operator,
        created_at: t0(),
        revoked_at: None,
    };
    store.put_api_key(&key).await.unwrap();
    assert_eq!(store.api_key(&key.key_hash).await.unwrap(), Some(key.clone()));
    assert_eq!(store.api_key(&"cd".repeat(32)).await.unwrap(), None);
    let renamed = ApiKeyRecord { name: "operator's system".into(), role: Role::Operator, ..key.clone() };
    store.put_api_key(&renamed).await.unwrap();
    assert_eq!(store.api_key(&key.key_hash).await.unwrap(), Some(renamed));
}

/// An operator's keys are listed oldest first, revoked ones too; a revoked key is not found by
/// its digest any more, keeps its first revocation instant, and a put does not lift it.
pub async fn account_api_keys_listed_and_revoked(store: Accounts) {
    let (mine, theirs) = (OperatorId::new(), OperatorId::new());
    let key = |n: u8, name: &str, role: Role, operator: OperatorId, at: i64| ApiKeyRecord {
        id: Uuid::now_v7(),
        name: name.into(),
        key_hash: format!("{n:02x}").repeat(32),
        role,
        operator,
        created_at: t0() + SignedDuration::from_secs(at),
        revoked_at: None,
    };
    let gate = key(1, "north gate", Role::Gate, mine, 20);
    let system = key(2, "back office", Role::Operator, mine, 10);
    let other = key(3, "another operator", Role::Operator, theirs, 0);
    for k in [&gate, &system, &other] {
        store.put_api_key(k).await.unwrap();
    }
    assert_eq!(store.api_keys(mine).await.unwrap(), vec![system.clone(), gate.clone()], "oldest first");
    assert_eq!(store.api_keys(OperatorId::new()).await.unwrap(), vec![]);
    assert_eq!(store.api_key_by_id(gate.id).await.unwrap(), Some(gate.clone()));
    assert_eq!(store.api_key_by_id(Uuid::now_v7()).await.unwrap(), None);

    let at = t0() + SignedDuration::from_hours(1);
    let revoked = store.revoke_api_key(gate.id, at).await.unwrap().expect("the key exists");
    assert_eq!(revoked, ApiKeyRecord { revoked_at: Some(at), ..gate.clone() });
    assert_eq!(store.api_key(&gate.key_hash).await.unwrap(), None, "a revoked key authenticates nothing");
    assert_eq!(store.api_key_by_id(gate.id).await.unwrap(), Some(revoked.clone()));
    let later = at + SignedDuration::from_hours(1);
    assert_eq!(
        store.revoke_api_key(gate.id, later).await.unwrap(),
        Some(revoked.clone()),
        "the first instant"
    );
    store.put_api_key(&gate).await.unwrap();
    assert_eq!(store.api_key(&gate.key_hash).await.unwrap(), None, "a put does not lift a revocation");
    assert_eq!(store.api_keys(mine).await.unwrap(), vec![system.clone(), revoked]);
    assert_eq!(store.api_key(&system.key_hash).await.unwrap(), Some(system), "the other keys still work");
    assert_eq!(store.api_key(&other.key_hash).await.unwrap(), Some(other));
    assert_eq!(store.revoke_api_key(Uuid::now_v7(), at).await.unwrap(), None);
}

fn lock_policy() -> LockPolicy {
    LockPolicy {
        max_failures: 3,
        lock: SignedDuration::from_secs(10),
        max_lock: SignedDuration::from_secs(40),
    }
}

/// Failures count per subject; the `max_failures`-th locks for `lock`, each further one twice
/// as long up to `max_lock`; another subject is untouched; clearing forgets the counter.
pub async fn account_throttle_counts_locks_and_clears(store: Accounts) {
    let p = lock_policy();
    let at = |s: i64| t0() + SignedDuration::from_secs(s);
    assert_eq!(store.auth_throttle("account:a").await.unwrap(), Throttle::default());
    for n in 1..=2 {
        let t = store.record_auth_failure("account:a", at(0), &p).await.unwrap();
        assert_eq!(t, Throttle { failures: n, locked_until: None });
    }
    let third = store.record_auth_failure("account:a", at(1), &p).await.unwrap();
    assert_eq!(third, Throttle { failures: 3, locked_until: Some(at(11)) });
    assert_eq!(store.auth_throttle("account:a").await.unwrap(), third);
    assert_eq!(third.locked_at(at(5)), Some(at(11)));
    assert_eq!(third.locked_at(at(11)), None, "the lock ends by itself");
    let fourth = store.record_auth_failure("account:a", at(12), &p).await.unwrap();
    assert_eq!(fourth, Throttle { failures: 4, locked_until: Some(at(32)) }, "twice as long");
    let t = store.record_auth_failure("account:a", at(33), &p).await.unwrap();
    assert_eq!(t.locked_until, Some(at(33 + 40)), "capped at max_lock");
    assert_eq!(store.auth_throttle("ip:127.0.0.1").await.unwrap(), Throttle::default());
    store.clear_auth_failures("account:a").await.unwrap();
    assert_eq!(store.auth_throttle("account:a").await.unwrap(), Throttle::default());
    let t = store.record_auth_failure("account:a", at(34), &p).await.unwrap();
    assert_eq!(t, Throttle { failures: 1, locked_until: None });
}

/// A counter without a failure for `max_lock` starts again from one.
pub async fn account_throttle_forgets_idle_counters(store: Accounts) {
    let p = lock_policy();
    store.record_auth_failure("ip:10.0.0.1", t0(), &p).await.unwrap();
    store.record_auth_failure("ip:10.0.0.1", t0(), &p).await.unwrap();
    let later = t0() + SignedDuration::from_secs(41);
    let t = store.record_auth_failure("ip:10.0.0.1", later, &p).await.unwrap();
    assert_eq!(t.failures, 1, "{t:?}");
    assert_eq!(t.locked_at(later), None);
}

/// Concurrent failures are all counted (as from replicas at once), and lock.
pub async fn account_throttle_counts_concurrent_failures(store: Accounts) {
    let p = LockPolicy { max_failures: 10, ..lock_policy() };
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.record_auth_failure("account:race", t0(), &p).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let t = store.auth_throttle("account:race").await.unwrap();
    assert_eq!(t.failures, 16, "{t:?}");
    assert_eq!(t.locked_at(t0()), Some(t0() + SignedDuration::from_secs(40)), "{t:?}");
}

/// The backend answers.
pub async fn account_ping_answers(store: Accounts) {
    store.ping().await.expect("ping");
}

/// Not part of the API: the account cases.
#[doc(hidden)]
#[macro_export]
macro_rules! __account_cases {
    ($mode:ident $($make:expr)?) => {
        $crate::__account_conformance! { $mode $($make)?;
            account_create_is_unique_by_email,
            account_round_trips_every_field,
            account_set_mfa_replaces_enrolment_and_codes,
            account_totp_step_accepted_once,
            account_recovery_code_used_once,
            account_sessions_expire_and_end,
            account_api_keys_round_trip,
            account_api_keys_listed_and_revoked,
            account_throttle_counts_locks_and_clears,
            account_throttle_forgets_idle_counters,
            account_throttle_counts_concurrent_failures,
            account_ping_answers,
        }
    };
}

/// Not part of the API: expands the account cases as tests, or as the list of their names.
#[doc(hidden)]
#[macro_export]
macro_rules! __account_conformance {
    (tests $make:expr; $($case:ident),* $(,)?) => {
        $($crate::__account_conformance! { @test $make; $case })*
    };
    (names; $($case:ident),* $(,)?) => {{
        $(let _ = $crate::accounts::testing::$case;)*
        &[$(::core::stringify!($case)),*]
    }};
    (@test $make:expr; $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            $crate::accounts::testing::$case($make.await).await;
        }
    };
}

/// Expands one `#[tokio::test]` per [`AccountStore`](crate::accounts::AccountStore)
/// conformance case, each calling `$make`: an async expression returning a fresh, empty
/// [`Accounts`](crate::accounts::Accounts).
#[macro_export]
macro_rules! account_conformance {
    ($make:expr) => {
        $crate::__account_cases!(tests $make);
    };
}

#[cfg(test)]
mod lists {
    use std::collections::BTreeSet;

    #[test]
    fn account_cases_are_all_listed() {
        let defined: BTreeSet<&str> = include_str!("testing.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("pub async fn "))
            .map(|rest| rest.split(['(', '<']).next().unwrap_or_default().trim())
            .collect();
        let names: &[&str] = crate::__account_cases!(names);
        let listed: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(listed.len(), names.len(), "a case is listed twice");
        assert_eq!(listed, defined);
    }
}
