//! The `parq` binary over TLS and on Redis Cluster: `parq migrate` and `parq serve` reach the
//! running PostgreSQL with `sslmode=verify-full` (every session they open is encrypted, as
//! `pg_stat_ssl` shows); the admission lock runs on a three-master Redis Cluster and on a Redis
//! that requires a client certificate (both read warm in `/readyz`); a CA that did not sign
//! PostgreSQL's certificate stops the server at start-up, saying why.

#[path = "../../parq-redis/tests/servers/mod.rs"]
mod servers;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parq_postgres::tokio_postgres::{self, NoTls};

const PARQ: &str = env!("CARGO_BIN_EXE_parq");

fn pg_url() -> String {
    std::env::var("PARQ_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn pg() -> tokio_postgres::Client {
    let (client, conn) = pg_url().parse::<tokio_postgres::Config>().unwrap().connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// The server's certificate (Debian's self-signed one: its own CA) and a name it is issued for.
async fn server_cert() -> (PathBuf, String) {
    let c = pg().await;
    let ssl: String = c.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(ssl, "on", "these tests need PostgreSQL with ssl = on (Debian's default)");
    let file: String = c.query_one("SHOW ssl_cert_file", &[]).await.unwrap().get(0);
    let mut path = PathBuf::from(file);
    if path.is_relative() {
        let dir: String = c.query_one("SHOW data_directory", &[]).await.unwrap().get(0);
        path = Path::new(&dir).join(path);
    }
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&path)
        .output()
        .expect("openssl reads the certificate");
    let text = String::from_utf8_lossy(&out.stdout);
    let name = text
        .split([',', '\n'])
        .find_map(|p| p.trim().strip_prefix("DNS:"))
        .unwrap_or_else(|| panic!("{} names no DNS host: {text}", path.display()))
        .to_owned();
    (path, name)
}

/// `parq serve` on a free port until dropped (SIGTERM, then wait).
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start(env: &[(&str, String)]) -> Serve {
        let mut child = Command::new(PARQ)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PARQ_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The banner, with the address, is on standard error (the logs are on standard output).
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut said = Vec::new();
        let url = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.to_owned();
                    }
                    said.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("parq serve did not start: {}", said.join("\n"));
                }
            }
        };
        Serve { child, url }
    }

    /// Waits until `/readyz` says the lock's Redis is warm.
    async fn until_lock_warm(&self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let body: serde_json::Value =
                reqwest::get(format!("{}/readyz", self.url)).await.unwrap().json().await.unwrap();
            if body["backends"]["lock"]["health"] == "warm" {
                return body;
            }
            assert!(Instant::now() < deadline, "the lock never read warm: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_verified_postgres_with_the_lock_on_a_cluster_and_on_tls_redis() {
    let (cert, name) = server_cert().await;
    let schema = format!("parq_t_{}", uuid::Uuid::now_v7().simple());
    let app = format!("parq-tls-{}", uuid::Uuid::now_v7().simple());
    let store_url = format!(
        "postgres://postgres@{name}:5432/test?hostaddr=127.0.0.1&sslmode=verify-full&application_name={app}"
    );
    let pg_env = vec![
        ("PARQ_STORE_URL", store_url.clone()),
        ("PARQ_PG_CA_FILE", cert.display().to_string()),
        ("PARQ_STORE_SCHEMA", schema.clone()),
        // Replicas on PostgreSQL share a pass keyring; the server refuses to start without one.
        ("PARQ_PASS_KEYS", parq_server::passkeys::Keyring::generate().unwrap().to_document()),
    ];

    let out = Command::new(PARQ)
        .arg("migrate")
        .envs(pg_env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(out.status.success(), "parq migrate over verify-full: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("done"));

    let cluster = servers::Cluster::start();
    let mut env = pg_env.clone();
    env.push(("PARQ_LOCK_URL", cluster.url()));
    env.push(("PARQ_NOTIFIER_URL", "postgres".into()));
    let serve = Serve::start(&env);
    let ready = serve.until_lock_warm().await;
    assert_eq!(ready["backends"]["lock"]["adapter"], "redis", "{ready}");

    // Every session of the server (its pool, its LISTEN connection) is encrypted.
    let c = pg().await;
    let row = c
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    let (sessions, all_tls): (i64, bool) = (row.get(0), row.get(1));
    assert!(sessions >= 2, "the pool and the listener are connected: {sessions}");
    assert!(all_tls, "every session of the server is encrypted");
    let listening: i64 = c
        .query_one(
            // The listener's session last ran its LISTEN, or the marker of a subscription.
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
              AND (query LIKE 'LISTEN%' OR query LIKE '%pg_notify%')",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(listening, 1, "the notifier listens on its own encrypted session");
    // The lock's keys went to the cluster.
    drop(serve);
    drop(cluster);

    // The lock on a Redis that speaks only TLS and requires a client certificate.
    let pki = servers::Pki::new();
    let redis = servers::TlsServer::start(&pki, true);
    let mut env = pg_env.clone();
    env.push(("PARQ_LOCK_URL", redis.url()));
    env.push(("PARQ_REDIS_CA_FILE", pki.file("ca.pem").display().to_string()));
    env.push(("PARQ_REDIS_CERT_FILE", pki.file("client.pem").display().to_string()));
    env.push(("PARQ_REDIS_KEY_FILE", pki.file("client.key").display().to_string()));
    let serve = Serve::start(&env);
    serve.until_lock_warm().await;
    drop(serve);

    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_stops_the_server_at_start() {
    let (_, name) = server_cert().await;
    let dir = servers::Pki::new();
    let wrong = dir.file("other-ca.pem");
    let store_url =
        format!("postgres://postgres:hunter2@{name}:5432/test?hostaddr=127.0.0.1&sslmode=verify-full");
    for (args, env) in [
        (vec!["serve", "--bind", "127.0.0.1:0"], vec![("PARQ_PG_CA_FILE", wrong.display().to_string())]),
        (vec!["migrate"], vec![("PARQ_PG_CA_FILE", wrong.display().to_string())]),
    ] {
        let out = Command::new(PARQ)
            .args(&args)
            .env("PARQ_STORE_URL", &store_url)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        // serve refuses to start (2); migrate fails (1).
        assert_eq!(out.status.code(), Some(if args[0] == "serve" { 2 } else { 1 }), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("certificate") && err.contains("UnknownIssuer"), "{args:?}: {err}");
        assert!(!err.contains("hunter2"), "the password is not printed: {err}");
    }
    // verify-full without a CA, and an unknown sslmode: refused before connecting.
    for (url, says) in [
        (format!("{}?sslmode=verify-full", pg_url()), "sslrootcert"),
        (format!("{}?sslmode=sometimes", pg_url()), "sslmode"),
    ] {
        let out = Command::new(PARQ).args(["migrate"]).env("PARQ_STORE_URL", &url).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("store_url") && err.contains(says), "{err}");
    }
}
