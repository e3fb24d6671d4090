//! HTTPS for the HTTP source: rustls with the aws-lc-rs provider (the one
//! the AWS SDK already links; no second crypto library), TLS 1.2 and 1.3,
//! ALPN `http/1.1`.
//!
//! The certificate and key are PEM files named in `[http.tls]`. They are
//! loaded before the listener binds (a bad file stops start-up), and
//! re-read on SIGHUP without touching the listener: new handshakes get the
//! new certificate, open connections keep theirs. A reload that fails (a
//! missing file, a key that does not match the certificate) logs an error
//! and keeps serving the old certificate. `check-config` loads the same
//! files ([`check_files`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, TlsSection, ValidatedConfig};
use crate::telemetry::metrics::count_reload;

use super::reload::on_sighup;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("cannot read the private key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("the private key {key} does not fit the certificate {cert}: {message}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
}

impl TlsError {
    /// As a config error naming the key at fault under `section`
    /// (`http.tls` or `mqtt.tls`); the message names the file.
    pub fn into_config_error(self, section: &str) -> ConfigError {
        let field = match &self {
            TlsError::Cert { .. } => "cert",
            TlsError::Key { .. } | TlsError::Mismatch { .. } => "key",
            TlsError::Config(_) => {
                return ConfigError::Invalid {
                    key: section.to_owned(),
                    message: self.to_string(),
                }
            }
        };
        ConfigError::Invalid {
            key: format!("{section}.{field}"),
            message: self.to_string(),
        }
    }
}

/// `check-config`: loads every configured certificate and key as start-up
/// would (`[http.tls]`, and `[mqtt.tls]` of the embedded broker), so a file
/// that is missing, unreadable, not PEM, or a key that does not fit its
/// certificate is found before a deployment, not at it.
pub fn check_files(config: &ValidatedConfig) -> Result<(), ConfigError> {
    let sections = [
        ("http.tls", config.file.http.tls.as_ref()),
        ("mqtt.tls", config.file.mqtt.tls.as_ref()),
    ];
    for (section, files) in sections {
        if let Some(files) = files {
            CertStore::load(files).map_err(|e| e.into_config_error(section))?;
        }
    }
    Ok(())
}

/// The served certificate, swapped whole on reload.
#[derive(Debug)]
pub struct CertStore {
    files: TlsSection,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads the files named in `files`.
    pub fn load(files: &TlsSection) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = load_certified_key(&files.cert, &files.key, &provider)?;
        Ok(Self {
            files: files.clone(),
            provider,
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// Re-reads the files; on failure the old certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.files.cert, &self.files.key, &self.provider)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(key);
        }
        Ok(())
    }

    /// An acceptor whose handshakes use whatever certificate is current.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        self.acceptor_for(&[b"http/1.1"])
    }

    /// Like [`CertStore::acceptor`] with other ALPN protocols (none: any client).
    pub fn acceptor_for(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<TlsAcceptor, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|k| k.clone())
    }
}

fn load_certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.to_owned(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert.to_owned(),
            message: "no CERTIFICATE block in the file".to_owned(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        message: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
        message: e.to_string(),
    })
}

/// Reloads `store` on every SIGHUP until `shutdown`; `what` (`http_tls`,
/// `mqtt_tls`) labels the reload in `config_reloads_total`. The signal is
/// listened for from the call on.
pub fn reload_on_sighup(
    store: Option<Arc<CertStore>>,
    what: &'static str,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send {
    on_sighup("certificate", shutdown, move || match &store {
        None => tracing::info!("SIGHUP received: no TLS certificate to reload"),
        Some(store) => {
            let result = store.reload();
            count_reload(what, result.is_ok());
            match result {
                Ok(()) => tracing::info!(
                    what,
                    cert = %store.files.cert.display(),
                    "SIGHUP received: TLS certificate reloaded"
                ),
                Err(e) => tracing::error!(
                    what,
                    error = %e,
                    "SIGHUP received: TLS reload failed; still serving the previous certificate"
                ),
            }
        }
    })
}
