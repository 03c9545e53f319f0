//! TLS to Redis (`rediss://`), against `redis-server`s of the test's own that listen only with
//! TLS, with a CA and certificates made for the test: the lock and the notifier work through
//! it; a client certificate is sent when the server requires one; a server whose certificate
//! the CA did not sign is refused.

mod common;
mod servers;

use std::sync::Arc;
use std::time::Duration;

use parq_core::testing;
use parq_redis::pool::{self, TlsFiles};
use parq_redis::{RedisLock, RedisManager, RedisNotifier, RedisPool, redis};
use servers::{Pki, TlsServer};

async fn pool_of(manager: RedisManager) -> Result<RedisPool, String> {
    let pool = pool::builder(8, Duration::from_secs(2)).build_unchecked(manager);
    let mut conn = pool.get().await.map_err(|e| format!("{e:?}"))?;
    let pong: String = redis::cmd("PING").query_async(&mut *conn).await.map_err(|e| format!("{e:?}"))?;
    assert_eq!(pong, "PONG");
    drop(conn);
    Ok(pool)
}

/// One connection of the manager and a `PING`, or the error, as said.
async fn connect(manager: RedisManager) -> Result<(), String> {
    let mut conn = manager.client().get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
    redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(|e| e.to_string())?;
    Ok(())
}

fn files(pki: &Pki, ca: &str, client: Option<&str>) -> TlsFiles {
    TlsFiles {
        ca: Some(pki.file(&format!("{ca}.pem"))),
        cert: client.map(|c| pki.file(&format!("{c}.pem"))),
        key: client.map(|c| pki.file(&format!("{c}.key"))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lock_and_the_notifier_run_over_tls() {
    let pki = Pki::new();
    let server = TlsServer::start(&pki, false);

    // The server speaks nothing but TLS: a plain connection to its port gets no answer.
    let plain = redis::Client::open(format!("redis://127.0.0.1:{}", server.process.port)).unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(2), async {
        let mut c = plain.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await
    })
    .await;
    assert!(!matches!(refused, Ok(Ok(_))), "a plain connection is not served: {refused:?}");

    let manager = RedisManager::open(&server.url(), &files(&pki, "ca", None)).unwrap();
    let nodes = manager.node_clients().to_vec();
    let pool = pool_of(manager).await.expect("rediss:// with the CA connects");

    // The admission lock's conformance cases, over TLS.
    let make = || async {
        Arc::new(RedisLock::new(pool.clone(), &common::prefix()).unwrap()) as Arc<parq_core::DynAdmissionLock>
    };
    testing::lock::lock_claims_conflict_and_repeat(make().await).await;
    testing::lock::lock_pooled_claims_take_the_first_free(make().await).await;
    testing::lock::lock_retain_and_release_check_the_token(make().await).await;
    testing::lock::lock_rebuild_replaces_claims_and_raises_fences(make().await).await;
    testing::lock::lock_race_64_claimants_one_grant(make().await).await;

    // The notifier's, with subscriptions on their own TLS connections.
    let notifier = || {
        Arc::new(
            RedisNotifier::on_nodes(pool.clone(), nodes.clone(), &common::prefix(), Default::default())
                .unwrap(),
        ) as Arc<parq_core::DynNotifier>
    };
    testing::notifier::notifier_delivers_in_order_per_lot(notifier()).await;
    testing::notifier::notifier_later_subscribers_see_later_events(notifier()).await;
    testing::notifier::notifier_every_subscriber_gets_every_event(notifier()).await;

    // The server counts the TLS connections it accepted.
    let mut conn = pool.get().await.unwrap();
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut *conn).await.unwrap();
    let accepted: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(accepted >= 2, "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_required_client_certificate_is_sent_and_a_wrong_ca_refused() {
    let pki = Pki::new();
    let server = TlsServer::start(&pki, true);
    let url = server.url();

    let e = connect(RedisManager::open(&url, &files(&pki, "ca", None)).unwrap()).await.unwrap_err();
    assert!(e.contains("CertificateRequired"), "without a client certificate the server refuses: {e}");
    let e =
        connect(RedisManager::open(&url, &files(&pki, "ca", Some("stranger"))).unwrap()).await.unwrap_err();
    assert!(!e.is_empty(), "a client certificate of another CA is refused: {e}");
    // Through the pool, the same refusal leaves no connection.
    assert!(pool_of(RedisManager::open(&url, &files(&pki, "ca", None)).unwrap()).await.is_err());

    let pool = pool_of(RedisManager::open(&url, &files(&pki, "ca", Some("client"))).unwrap())
        .await
        .expect("with the client certificate the server answers");
    let prefix = common::prefix();
    let lock = RedisLock::new(pool.clone(), &prefix).unwrap();
    let (lot, spot) = (parq_core::LotId::new(), parq_core::SpotId::new());
    let c = common::claim(lot, &[spot], common::hours(1, 1), parq_core::ReservationId::new());
    use parq_core::AdmissionLock;
    assert_eq!(lock.claim(&c).await.unwrap().fence, 1);

    // A CA that did not sign the server's certificate: the handshake fails, saying so.
    let e = connect(RedisManager::open(&url, &files(&pki, "other-ca", Some("client"))).unwrap())
        .await
        .unwrap_err();
    assert!(e.contains("invalid peer certificate: UnknownIssuer"), "{e}");

    // Unusable files are refused when the manager is made, naming the setting.
    let missing = TlsFiles { ca: Some(pki.file("nonexistent.pem")), ..TlsFiles::default() };
    let e = RedisManager::open(&url, &missing).unwrap_err().to_string();
    assert!(e.contains("redis_ca_file") && e.contains("nonexistent.pem"), "{e}");
    let half = TlsFiles { cert: Some(pki.file("client.pem")), ..files(&pki, "ca", None) };
    let e = RedisManager::open(&url, &half).unwrap_err().to_string();
    assert!(e.contains("redis_cert_file"), "{e}");
}
