//! TLS to the running PostgreSQL (SSL on, as Debian's package sets it up with its self-signed
//! "snakeoil" certificate): each `sslmode` does what libpq's does, checked from the server's
//! side with `pg_stat_ssl`, and a certificate that does not verify is refused with a clear
//! error.

use std::path::{Path, PathBuf};
use std::process::Command;

use parq_postgres::tls::{SslMode, parse_url};
use parq_postgres::tokio_postgres::{self, NoTls};
use parq_postgres::{PgNotifier, PgTls};

/// The test database's URL, without TLS parameters.
fn base_url() -> String {
    std::env::var("PARQ_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn with(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// The server's certificate file (`SHOW ssl_cert_file`), after checking that SSL is on.
async fn server_cert() -> PathBuf {
    let config: tokio_postgres::Config = base_url().parse().unwrap();
    let (client, conn) = config
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {} ({e}); set PARQ_TEST_PG_URL", base_url()));
    tokio::spawn(conn);
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(ssl, "on", "these tests need PostgreSQL with ssl = on (Debian's default)");
    let file: String = client.query_one("SHOW ssl_cert_file", &[]).await.unwrap().get(0);
    let path = PathBuf::from(&file);
    // A relative path is under the data directory.
    if path.is_absolute() {
        path
    } else {
        let dir: String = client.query_one("SHOW data_directory", &[]).await.unwrap().get(0);
        Path::new(&dir).join(path)
    }
}

/// The DNS names a certificate is issued for (its subject alternative names, else its CN).
fn names_of(cert: &Path) -> Vec<String> {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-ext", "subjectAltName", "-nameopt", "multiline", "-in"])
        .arg(cert)
        .output()
        .expect("the openssl command reads the server's certificate");
    assert!(out.status.success(), "openssl x509: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut names: Vec<String> =
        text.split([',', '\n']).filter_map(|p| p.trim().strip_prefix("DNS:")).map(str::to_owned).collect();
    if names.is_empty() {
        names.extend(
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("commonName"))
                .map(|v| v.trim_start_matches([' ', '=']).trim().to_owned()),
        );
    }
    names
}

/// A CA of its own, which signed nothing PostgreSQL presents.
fn other_ca(dir: &Path) -> PathBuf {
    let (key, cert) = (dir.join("other-ca.key"), dir.join("other-ca.pem"));
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-days", "2", "-subj", "/CN=Not the PostgreSQL CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes a throwaway CA");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    cert
}

async fn connect(url: &str, ca: Option<&Path>) -> Result<tokio_postgres::Client, String> {
    let (config, tls) = parse_url(url, ca).map_err(|e| e.to_string())?;
    let (client, conn) = config.connect(tls).await.map_err(|e| {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        text
    })?;
    tokio::spawn(conn);
    Ok(client)
}

async fn encrypted(client: &tokio_postgres::Client) -> bool {
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn each_sslmode_encrypts_and_checks_as_libpq_does() {
    let cert = server_cert().await;
    let names = names_of(&cert);
    let name = names.first().unwrap_or_else(|| panic!("{} names no host", cert.display())).clone();
    let url = base_url();

    let plain = connect(&with(&url, "sslmode=disable"), None).await.unwrap();
    assert!(!encrypted(&plain).await, "sslmode=disable is not encrypted");
    let preferred = connect(&url, None).await.unwrap();
    assert!(encrypted(&preferred).await, "the default (prefer) encrypts when the server offers TLS");
    let required = connect(&with(&url, "sslmode=require"), None).await.unwrap();
    assert!(encrypted(&required).await, "sslmode=require is encrypted");

    // The server's own certificate is its CA (self-signed): checked, also against its name when
    // connecting to 127.0.0.1 under the name the certificate is issued for.
    let full = format!(
        "postgres://postgres@{name}:5432/test?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
        cert.display()
    );
    let verified = connect(&full, None).await.unwrap();
    assert!(encrypted(&verified).await, "verify-full is encrypted");
    let ca = connect(&with(&url, "sslmode=verify-ca"), Some(&cert)).await.unwrap();
    assert!(encrypted(&ca).await, "verify-ca with the CA from the default (pg_ca_file) works");

    // Another name: verify-ca does not look at it, verify-full refuses it.
    let elsewhere = format!(
        "postgres://postgres@parq-not-this-host.invalid:5432/test?hostaddr=127.0.0.1&sslrootcert={}",
        cert.display()
    );
    let ca_only = connect(&with(&elsewhere, "sslmode=verify-ca"), None).await.unwrap();
    assert!(encrypted(&ca_only).await);
    let e = connect(&with(&elsewhere, "sslmode=verify-full"), None).await.unwrap_err();
    assert!(e.contains("certificate") && e.contains("parq-not-this-host.invalid"), "{e}");

    // A CA that did not sign the server's certificate: refused, saying why.
    let dir = tempdir();
    let wrong = other_ca(&dir);
    for mode in ["verify-ca", "verify-full", "require"] {
        let e = connect(
            &with(&with(&url, &format!("sslmode={mode}")), &format!("sslrootcert={}", wrong.display())),
            None,
        )
        .await
        .unwrap_err();
        assert!(e.contains("certificate") && e.contains("UnknownIssuer"), "{mode}: {e}");
    }
    // verify-* without a CA is refused before connecting.
    let e = connect(&with(&url, "sslmode=verify-full"), None).await.unwrap_err();
    assert!(e.contains("sslrootcert"), "{e}");
    assert_eq!(PgTls::new(SslMode::Require, Some(&cert)).unwrap().mode(), SslMode::VerifyCa);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn the_listener_connects_through_tls() {
    let cert = server_cert().await;
    let (config, tls) = parse_url(&with(&base_url(), "sslmode=verify-ca"), Some(&cert)).unwrap();
    let channel = format!("parq_tls_{}", uuid::Uuid::now_v7().simple());
    let notifier = PgNotifier::connect_tls(config, tls, channel.clone()).await.unwrap();
    assert_eq!(notifier.channel(), channel);
    // The listening session is one of the server's encrypted sessions, listening on the channel.
    let check = connect(&base_url(), None).await.unwrap();
    let listening: bool = check
        .query_one(
            "SELECT coalesce(bool_and(s.ssl), false) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.query LIKE '%' || $1 || '%' AND a.pid <> pg_backend_pid()",
            &[&channel],
        )
        .await
        .unwrap()
        .get(0);
    assert!(listening, "the LISTEN session is encrypted");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parq-pg-tls-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
