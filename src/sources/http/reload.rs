//! SIGHUP: what the HTTP listener re-reads without a restart. TLS
//! certificates ([`super::tls`]) and the `[http.auth]` API keys, each on its
//! own listener of the signal.
//!
//! Keys: the config file is read and validated again, and the key table
//! is swapped whole, so adding, rotating or revoking a key needs no
//! restart. A request already past its key check keeps the answer it got;
//! the next request sees the new table. A file that does not load or
//! validate, or that changes what only a restart applies
//! (`http.auth.enabled`, `http.auth.seed_routes`), is refused: the error is
//! logged, `config_reloads_total{what="api_keys",outcome="failed"}` counts
//! it, and the previous keys stay.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use super::auth::ApiKeys;
use crate::config::{ConfigError, Overrides, SeedRouteAccess, ValidatedConfig};
use crate::telemetry::metrics::count_reload;

/// The API keys in force, swapped whole on reload.
#[derive(Debug)]
pub struct KeyStore {
    current: RwLock<Arc<ApiKeys>>,
}

impl KeyStore {
    pub fn new(keys: ApiKeys) -> Self {
        Self {
            current: RwLock::new(Arc::new(keys)),
        }
    }

    /// The table to check one request against.
    pub fn current(&self) -> Arc<ApiKeys> {
        match self.current.read() {
            Ok(k) => k.clone(),
            // A panic while swapping cannot leave a half-written Arc.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, keys: ApiKeys) {
        let keys = Arc::new(keys);
        match self.current.write() {
            Ok(mut k) => *k = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }
}

/// Why a key reload was refused (the previous keys stay).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("`http.auth.{0}` changed: only a restart applies it")]
    NeedsRestart(&'static str),
    #[error("the gateway runs on the embedded default config: there is no file to re-read")]
    NoFile,
}

/// Re-reads `[http.auth]` keys from the file the gateway started with.
#[derive(Debug)]
pub struct KeyReloader {
    /// `None` when auth is off: a reload can only confirm it stays off.
    store: Option<Arc<KeyStore>>,
    enabled: bool,
    seed_routes: SeedRouteAccess,
    source: Option<PathBuf>,
    overrides: Overrides,
}

impl KeyReloader {
    pub fn new(config: &ValidatedConfig, store: Option<Arc<KeyStore>>) -> Self {
        let auth = &config.file.http.auth;
        Self {
            store,
            enabled: auth.enabled,
            seed_routes: auth.seed_routes,
            source: config.source.clone(),
            overrides: config.overrides.clone(),
        }
    }

    /// Loads and validates the file again and swaps the keys in; returns
    /// how many keys are now accepted.
    pub fn reload(&self) -> Result<usize, ReloadError> {
        let path = self.source.as_deref().ok_or(ReloadError::NoFile)?;
        let config = ValidatedConfig::load(Some(path), &self.overrides)?;
        let auth = &config.file.http.auth;
        if auth.enabled != self.enabled {
            return Err(ReloadError::NeedsRestart("enabled"));
        }
        if auth.seed_routes != self.seed_routes {
            return Err(ReloadError::NeedsRestart("seed_routes"));
        }
        let Some(store) = &self.store else {
            return Ok(0);
        };
        store.replace(ApiKeys::new(&config.api_keys));
        Ok(config.api_keys.len())
    }

    /// One SIGHUP: reload, log and count the outcome.
    fn on_signal(&self) {
        if self.source.is_none() {
            // Nothing was configured, so nothing can change: not a failure.
            tracing::info!("SIGHUP received: no config file, API keys unchanged");
            return;
        }
        let result = self.reload();
        count_reload("api_keys", result.is_ok());
        match result {
            Ok(keys) => tracing::info!(keys, "SIGHUP received: API keys reloaded"),
            Err(e) => tracing::error!(
                error = %e,
                "SIGHUP received: API key reload failed; the previous keys stay in force"
            ),
        }
    }
}

/// Reloads the API keys on every SIGHUP until `shutdown`. The signal is
/// listened for from the call on, so spawn the future before announcing
/// readiness.
pub fn reload_keys_on_sighup(
    reloader: KeyReloader,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send {
    on_sighup("API key", shutdown, move || reloader.on_signal())
}

/// Runs `action` on every SIGHUP until `shutdown`. The handler is installed
/// by this call, not when the future first runs, so a SIGHUP right after it
/// is not missed. `what` names the reload in the warning when the signal
/// cannot be listened for.
#[cfg(unix)]
pub fn on_sighup(
    what: &'static str,
    shutdown: CancellationToken,
    mut action: impl FnMut() + Send + 'static,
) -> impl Future<Output = ()> + Send {
    use tokio::signal::unix::{signal, SignalKind};
    let hup = signal(SignalKind::hangup());
    async move {
        let mut hup = match hup {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; {what} reload disabled");
                return;
            }
        };
        loop {
            tokio::select! {
                s = hup.recv() => if s.is_none() { return },
                _ = shutdown.cancelled() => return,
            }
            action();
        }
    }
}

/// No SIGHUP off Unix: nothing is reloaded.
#[cfg(not(unix))]
pub fn on_sighup(
    _what: &'static str,
    shutdown: CancellationToken,
    _action: impl FnMut() + Send + 'static,
) -> impl Future<Output = ()> + Send {
    async move { shutdown.cancelled().await }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_TOML;
    use hyper::header::{HeaderValue, AUTHORIZATION};
    use hyper::HeaderMap;

    fn auth_toml(enabled: bool, keys: &[(&str, &str)]) -> String {
        let mut text = format!("{DEFAULT_TOML}\n[http.auth]\nenabled = {enabled}\n");
        for (name, key) in keys {
            text.push_str(&format!(
                "[[http.auth.keys]]\nname = \"{name}\"\nsha256 = \"{}\"\nstreams = [\"*\"]\n",
                super::super::auth::hash_key(key)
            ));
        }
        text
    }

    fn bearer(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {key}")).expect("header");
        h.insert(AUTHORIZATION, value);
        h
    }

    fn started(path: &std::path::Path) -> (Arc<KeyStore>, KeyReloader) {
        let config = ValidatedConfig::load(Some(path), &Overrides::default()).expect("valid");
        let store = Arc::new(KeyStore::new(ApiKeys::new(&config.api_keys)));
        let reloader = KeyReloader::new(&config, Some(store.clone()));
        (store, reloader)
    }

    #[test]
    fn a_reload_swaps_the_keys_and_a_bad_file_keeps_the_old_ones() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, auth_toml(true, &[("old", "old-key")])).expect("write");
        let (store, reloader) = started(&path);
        assert!(store.current().identify(&bearer("old-key")).is_ok());

        std::fs::write(
            &path,
            auth_toml(true, &[("new", "new-key"), ("b", "b-key")]),
        )
        .expect("write");
        assert_eq!(reloader.reload().expect("reloaded"), 2);
        assert!(store.current().identify(&bearer("old-key")).is_err());
        assert!(store.current().identify(&bearer("new-key")).is_ok());

        // Not TOML, then a key without a hash, then auth switched off:
        // each refused, the keys of the last good file stay.
        std::fs::write(&path, "[http.auth\n").expect("write");
        assert!(matches!(reloader.reload(), Err(ReloadError::Config(_))));
        let bad = auth_toml(true, &[])
            + "[[http.auth.keys]]\nname = \"x\"\nsha256 = \"abc\"\nstreams = [\"*\"]\n";
        std::fs::write(&path, bad).expect("write");
        let e = reloader.reload().expect_err("bad hash");
        assert!(e.to_string().contains("http.auth.keys[0].sha256"), "{e}");
        std::fs::write(&path, auth_toml(false, &[])).expect("write");
        assert!(matches!(
            reloader.reload(),
            Err(ReloadError::NeedsRestart("enabled"))
        ));
        std::fs::remove_file(&path).expect("rm");
        assert!(matches!(reloader.reload(), Err(ReloadError::Config(_))));
        assert!(store.current().identify(&bearer("new-key")).is_ok());
        assert!(store.current().identify(&bearer("b-key")).is_ok());
    }

    #[test]
    fn without_a_file_there_is_nothing_to_reload() {
        let config = ValidatedConfig::load(None, &Overrides::default()).expect("default");
        let reloader = KeyReloader::new(&config, None);
        assert!(matches!(reloader.reload(), Err(ReloadError::NoFile)));
    }
}
