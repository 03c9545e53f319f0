//! TLS to PostgreSQL through rustls, with libpq's `sslmode` and `sslrootcert`.
//!
//! [`parse_url`] reads a `postgres://` URL (or a `key=value` connection string) with libpq's
//! TLS parameters, which `tokio-postgres` alone does not all know, and gives the driver's
//! [`Config`](tokio_postgres::Config) with a [`PgTls`] connector that enforces them:
//!
//! | `sslmode` | encrypted | server certificate checked |
//! | --- | --- | --- |
//! | `disable` | never | — |
//! | `prefer` (the default, as in libpq) | when the server offers it | no |
//! | `require` | always, or the connection fails | no; with a CA file, as `verify-ca` (as libpq does) |
//! | `verify-ca` | always | signed by the CA of `sslrootcert` |
//! | `verify-full` | always | signed by the CA, and issued for the host name connected to |
//!
//! The CA file (PEM, one or more certificates) comes from `sslrootcert=/path` in the URL, else
//! from the default the caller gives (the server's `pg_ca_file`). `verify-ca` and `verify-full`
//! without one are refused when the URL is read, not at the first connection. With
//! `hostaddr=IP`, the connection goes to that address and `verify-full` checks the name of
//! `host`, as in libpq.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// libpq's `sslmode`, as this crate enforces it (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    #[default]
    Prefer,
    /// TLS or no connection, without checking the certificate (unless a CA file is given).
    Require,
    /// TLS, with a certificate signed by the given CA.
    VerifyCa,
    /// TLS, with a certificate signed by the given CA for the host name connected to.
    VerifyFull,
}

impl SslMode {
    /// The mode libpq names `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// libpq's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a URL's TLS settings cannot be used. The messages never repeat the URL (it may hold a
/// password).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `sslmode` has a value libpq does not know, or one this crate does not implement.
    #[error("sslmode={0:?} is not supported; use disable, prefer, require, verify-ca or verify-full")]
    SslMode(String),
    /// `verify-ca` or `verify-full` without a CA file.
    #[error("sslmode={0} needs the CA that signed the server's certificate: give sslrootcert=/path/ca.pem")]
    NoRootCert(SslMode),
    /// The CA file cannot be read.
    #[error("cannot read the CA file {path}: {source}")]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The CA file holds no certificate rustls accepts.
    #[error("the CA file {path} holds no usable PEM certificate{detail}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What was wrong, when known.
        detail: String,
    },
    /// The rest of the URL does not parse.
    #[error("is not a usable PostgreSQL URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// rustls refused the settings.
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A connection string with libpq's TLS parameters, read: the driver's configuration and the
/// connector to give it. See the [module docs](self).
pub fn parse_url(
    url: &str,
    default_root_cert: Option<&Path>,
) -> Result<(tokio_postgres::Config, PgTls), TlsError> {
    let (rest, mode, root) = take_tls_params(url)?;
    let mut config = rest.parse::<tokio_postgres::Config>().map_err(TlsError::Url)?;
    let mode = mode.unwrap_or_default();
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    let root = root.as_deref().or(default_root_cert);
    Ok((config, PgTls::new(mode, root)?))
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query or a `key=value` string, leaving
/// what `tokio-postgres` parses.
fn take_tls_params(url: &str) -> Result<(String, Option<SslMode>, Option<PathBuf>), TlsError> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: String| -> Result<bool, TlsError> {
        match key {
            "sslmode" => {
                mode = Some(SslMode::parse(&value).ok_or(TlsError::SslMode(value))?);
                Ok(true)
            }
            "sslrootcert" => {
                root = Some(PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, percent_decode(v))? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
        }
    } else {
        let mut kept = Vec::new();
        for token in url.split_whitespace() {
            let taken = match token.split_once('=') {
                Some((k, v)) if !v.starts_with('\'') => take(k.trim(), v.to_owned())?,
                _ => false,
            };
            if !taken {
                kept.push(token);
            }
        }
        kept.join(" ")
    };
    Ok((rest, mode, root))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the certificates of a PEM file into a root store.
pub fn load_root_certs(path: &Path) -> Result<RootCertStore, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::ReadCa { path: path.into(), source })?;
    let mut roots = RootCertStore::empty();
    let mut detail = String::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        match cert {
            Ok(c) => {
                if let Err(e) = roots.add(c) {
                    detail = format!(": {e}");
                }
            }
            Err(e) => detail = format!(": {e}"),
        }
    }
    if roots.is_empty() {
        return Err(TlsError::BadCa { path: path.into(), detail });
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The connector of a [`SslMode`]: a `tokio-postgres` [`MakeTlsConnect`] over rustls (with
/// the *ring* provider). Cheap to clone.
#[derive(Clone)]
pub struct PgTls {
    mode: SslMode,
    config: Arc<ClientConfig>,
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTls").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl PgTls {
    /// The connector for `mode`, trusting the CA certificates of the PEM file `root_cert`.
    /// `require` with a CA file checks as `verify-ca` (as libpq does); `verify-ca` and
    /// `verify-full` need one.
    pub fn new(mode: SslMode, root_cert: Option<&Path>) -> Result<Self, TlsError> {
        let provider = provider();
        let roots = root_cert.map(load_root_certs).transpose()?;
        let mode = match (mode, &roots) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => return Err(TlsError::NoRootCert(mode)),
            (m, _) => m,
        };
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => {
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?
            }
            (SslMode::VerifyCa, Some(roots)) => Arc::new(SignedByCa { roots, algorithms }),
            _ => Arc::new(Unchecked { algorithms }),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self { mode, config: Arc::new(config) })
    }

    /// The mode enforced (`require` with a CA file reads `verify-ca`).
    pub fn mode(&self) -> SslMode {
        self.mode
    }
}

/// `verify-ca`: the chain must lead to the CA; the name is not checked.
#[derive(Debug)]
struct SignedByCa {
    roots: RootCertStore,
    algorithms: WebPkiSupportedAlgorithms,
}

/// `prefer` and `require` without a CA: encrypted, but anyone's certificate is taken (libpq's
/// meaning). The handshake's signatures are still checked.
#[derive(Debug)]
struct Unchecked {
    algorithms: WebPkiSupportedAlgorithms,
}

macro_rules! signatures_checked {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for SignedByCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    signatures_checked!();
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    signatures_checked!();
}

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<PgTlsConnect> {
        let name = match ServerName::try_from(domain.to_owned()) {
            Ok(n) => n,
            // Only verify-full looks at the name.
            Err(_) if self.mode != SslMode::VerifyFull => {
                ServerName::try_from("localhost").expect("a DNS name")
            }
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("sslmode=verify-full needs a host name to check: {e}"),
                ));
            }
        };
        Ok(PgTlsConnect { connector: tokio_rustls::TlsConnector::from(self.config.clone()), name })
    }
}

/// One connection's TLS handshake (see [`PgTls`]).
pub struct PgTlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl fmt::Debug for PgTlsConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTlsConnect").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = self.connector.connect(self.name, stream).await?;
            Ok(PgTlsStream(tls))
        })
    }
}

/// An encrypted connection to PostgreSQL.
pub struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> fmt::Debug for PgTlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTlsStream").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM then runs without channel binding, as it does over libpq without OpenSSL.
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_urls_and_key_value_strings() {
        let (rest, mode, root) = take_tls_params(
            "postgres://u:p@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5/db?application_name=x");
        assert_eq!((mode, root), (Some(SslMode::VerifyFull), Some(PathBuf::from("/ca.pem"))));
        let (rest, mode, _) = take_tls_params("postgres://h/db?sslmode=require").unwrap();
        assert_eq!((rest.as_str(), mode), ("postgres://h/db", Some(SslMode::Require)));
        let (rest, mode, root) =
            take_tls_params("host=h sslmode=verify-ca sslrootcert=/a.pem user=u").unwrap();
        assert_eq!(
            (rest.as_str(), mode, root),
            ("host=h user=u", Some(SslMode::VerifyCa), Some("/a.pem".into()))
        );
        assert!(
            matches!(take_tls_params("postgres://h/db?sslmode=allow"), Err(TlsError::SslMode(m)) if m == "allow")
        );
        assert!(matches!(
            PgTls::new(SslMode::VerifyFull, None),
            Err(TlsError::NoRootCert(SslMode::VerifyFull))
        ));
        assert!(matches!(PgTls::new(SslMode::Require, None), Ok(t) if t.mode() == SslMode::Require));
        let e = PgTls::new(SslMode::VerifyCa, Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
