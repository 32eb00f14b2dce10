//! API keys as operations: creating, listing and revoking them, and
//! [`Authenticator`], which turns a presented key into an [`Identity`] with a
//! short-lived cache. Transport-neutral: the gRPC layer and the webhooks both
//! call it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::key::{
    Identity, RandomError, Role, StoredKey, generate_key, intern_tenant, is_key_id, parse_key,
    validate_tenant,
};
use crate::domain::{UnixMs, now_ms};
use crate::store::{Store, StoreError};

/// How long a key read from the database is trusted without reading it
/// again. A revocation takes effect on every replica within this time; a
/// shorter one costs one primary-key read per key per interval.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// `last_used_time` is written at most once per this interval per key, so a
/// busy key does not turn every request into a write.
pub const LAST_USED_INTERVAL_MS: i64 = 60_000;

/// Most keys held in the cache. Only keys that exist are cached, so this
/// bounds memory even against a flood of made-up key ids.
const KEY_CACHE_CAPACITY: usize = 10_000;

/// Longest key name, in bytes.
const MAX_NAME_LEN: usize = 200;

/// Why a key operation (create, list, revoke) failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid tenant: {0}")]
    InvalidTenant(String),
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("no key with id `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a key; answers what is stored and the key itself, which exists
/// nowhere else afterwards.
pub async fn create_key(
    store: &Store,
    tenant: &str,
    role: Role,
    name: &str,
) -> Result<(StoredKey, String), KeyError> {
    validate_tenant(tenant).map_err(KeyError::InvalidTenant)?;
    if name.len() > MAX_NAME_LEN {
        return Err(KeyError::InvalidName(format!(
            "longer than {MAX_NAME_LEN} bytes"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(KeyError::InvalidName(
            "control characters (newlines, tabs, NUL) are not allowed".to_owned(),
        ));
    }
    let new = generate_key()?;
    let stored = StoredKey {
        key_id: new.key_id,
        tenant: tenant.to_owned(),
        role,
        name: name.to_owned(),
        secret_hash: new.secret_hash,
        create_time: now_ms(),
        last_used_time: None,
        revoke_time: None,
    };
    store.insert_key(&stored).await?;
    Ok((stored, new.key))
}

/// Every key, or a tenant's.
pub async fn list_keys(store: &Store, tenant: Option<&str>) -> Result<Vec<StoredKey>, KeyError> {
    if let Some(tenant) = tenant {
        validate_tenant(tenant).map_err(KeyError::InvalidTenant)?;
    }
    Ok(store.list_keys(tenant).await?)
}

/// Revokes a key. Every replica refuses it within [`KEY_CACHE_TTL`].
pub async fn revoke_key(store: &Store, key_id: &str) -> Result<(), KeyError> {
    if !is_key_id(key_id) || !store.revoke_key(key_id, now_ms()).await? {
        return Err(KeyError::NotFound(crate::domain::without_nul(key_id)));
    }
    Ok(())
}

/// Why a request was not authenticated. The messages go to clients: they
/// say what is wrong and never echo the key.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send the header `authorization: Bearer <key>`")]
    Missing,
    #[error(
        "malformed API key: expected `authorization: Bearer csk_<key id>_<secret>` as printed by `callscope keys create`"
    )]
    Malformed,
    /// No such key, or the secret does not match.
    #[error("unknown API key")]
    Unknown { key_id: String },
    #[error("this API key has been revoked")]
    Revoked { key_id: String },
    /// The keys could not be read; the client may retry.
    #[error("cannot check the API key now, retry later")]
    Unavailable(#[source] StoreError),
}

impl AuthError {
    /// The key id, when the key had the form of one (for logs).
    pub fn key_id(&self) -> Option<&str> {
        match self {
            AuthError::Unknown { key_id } | AuthError::Revoked { key_id } => Some(key_id),
            _ => None,
        }
    }
}

/// The key of an `Authorization` header value: `Bearer <key>` (scheme in
/// any case, as RFC 9110 has it).
pub fn bearer_token(value: &str) -> Result<&str, AuthError> {
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}

/// Turns presented keys into identities. Cheap to clone; with `--auth none`
/// every request is [`Identity::anonymous`].
#[derive(Clone)]
pub struct Authenticator(Option<Arc<KeyCache>>);

struct KeyCache {
    store: Store,
    ttl: Duration,
    entries: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    key: StoredKey,
    read_at: Instant,
}

impl Authenticator {
    /// No authentication: everything acts for the default tenant.
    pub fn none() -> Self {
        Self(None)
    }

    /// Checks keys against `store`, trusting a read key for [`KEY_CACHE_TTL`].
    pub fn keys(store: Store) -> Self {
        Self::keys_with_ttl(store, KEY_CACHE_TTL)
    }

    /// As [`Authenticator::keys`] with another cache lifetime.
    pub fn keys_with_ttl(store: Store, ttl: Duration) -> Self {
        Self(Some(Arc::new(KeyCache {
            store,
            ttl,
            entries: Mutex::new(HashMap::new()),
        })))
    }

    /// Whether requests need a key.
    pub fn requires_key(&self) -> bool {
        self.0.is_some()
    }

    /// The identity of a request given the key it presented, if any.
    pub async fn authenticate(&self, presented: Option<&str>) -> Result<Identity, AuthError> {
        let Some(cache) = &self.0 else {
            return Ok(Identity::anonymous());
        };
        let presented = presented.ok_or(AuthError::Missing)?;
        let key = parse_key(presented).map_err(|_| AuthError::Malformed)?;
        let stored = cache.get(key.key_id).await?;
        let unknown = || AuthError::Unknown {
            key_id: key.key_id.to_owned(),
        };
        let stored = stored.ok_or_else(unknown)?;
        if !key.matches(&stored.secret_hash) {
            return Err(unknown());
        }
        if stored.revoke_time.is_some() {
            return Err(AuthError::Revoked {
                key_id: stored.key_id,
            });
        }
        cache.note_use(&stored);
        Ok(Identity {
            tenant: intern_tenant(&stored.tenant),
            role: stored.role,
            key_id: Some(stored.key_id),
        })
    }
}

impl KeyCache {
    /// The stored key, from the cache while fresh, else from the database.
    async fn get(&self, key_id: &str) -> Result<Option<StoredKey>, AuthError> {
        if let Some(hit) = self.lock().get(key_id)
            && hit.read_at.elapsed() < self.ttl
        {
            return Ok(Some(hit.key.clone()));
        }
        let stored = self
            .store
            .get_key(key_id)
            .await
            .map_err(AuthError::Unavailable)?;
        let mut entries = self.lock();
        match &stored {
            Some(key) => {
                if entries.len() >= KEY_CACHE_CAPACITY {
                    let ttl = self.ttl;
                    entries.retain(|_, c| c.read_at.elapsed() < ttl);
                    if entries.len() >= KEY_CACHE_CAPACITY {
                        entries.clear();
                    }
                }
                entries.insert(
                    key_id.to_owned(),
                    Cached {
                        key: key.clone(),
                        read_at: Instant::now(),
                    },
                );
            }
            None => {
                entries.remove(key_id);
            }
        }
        Ok(stored)
    }

    /// Records a use of the key at most once per [`LAST_USED_INTERVAL_MS`],
    /// in the background: a request never waits for it.
    fn note_use(&self, key: &StoredKey) {
        let now = now_ms();
        let not_since: UnixMs = now - LAST_USED_INTERVAL_MS;
        {
            let mut entries = self.lock();
            let Some(cached) = entries.get_mut(&key.key_id) else {
                return;
            };
            if cached.key.last_used_time.is_some_and(|t| t >= not_since) {
                return;
            }
            // Later requests of this replica see the write as done.
            cached.key.last_used_time = Some(now);
        }
        let store = self.store.clone();
        let key_id = key.key_id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_key(&key_id, now, not_since).await {
                tracing::warn!(error = %e, key_id, "could not record the key's last use");
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc").ok(), Some("abc"));
        assert_eq!(bearer_token("bearer  abc ").ok(), Some("abc"));
        assert!(bearer_token("Basic abc").is_err());
        assert!(bearer_token("abc").is_err());
    }
}
