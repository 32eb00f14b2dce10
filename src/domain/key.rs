//! API keys as plain values: the key format, roles, tenant names, the
//! identity a request acts as, and hashing a key's secret.
//!
//! A key reads `csk_<key_id>_<secret>`: `key_id` is 16 lowercase hex digits
//! (8 random bytes), the secret 64 (32 random bytes). The id makes a look-up
//! one primary-key read; only the SHA-256 of the secret is stored, and it is
//! compared in constant time.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every key starts with, so a leaked key is recognisable (secret
/// scanners) and a key is never mistaken for a key id.
pub const KEY_PREFIX: &str = "csk_";
/// Hex digits of a key id.
pub const KEY_ID_LEN: usize = 16;
/// Hex digits of a key's secret (32 random bytes).
pub const SECRET_LEN: usize = 64;
/// The length of a whole key; anything else is refused before any look-up.
pub const KEY_LEN: usize = KEY_PREFIX.len() + KEY_ID_LEN + 1 + SECRET_LEN;
/// The longest tenant name, in bytes.
pub const MAX_TENANT_LEN: usize = 64;

/// What a key may do. `admin` may do everything; `read` and `ingest` are
/// disjoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Calls, analytics, catalog reads, exports and watches.
    Read,
    /// IngestService and the vendor webhooks.
    Ingest,
    /// Everything, AdminService included.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Read, Role::Ingest, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Ingest => "ingest",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| format!("unknown role `{text}`: use read, ingest or admin"))
    }

    /// Whether a key of this role may do what `needed` is required for.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a request acts as. Put into the request by the authentication layer;
/// the tenant comes from the key, never from the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub tenant: &'static str,
    pub role: Role,
    /// The key's id; `None` with `--auth none`.
    pub key_id: Option<String>,
}

impl Identity {
    /// With `--auth none`: every request acts for the default tenant and may
    /// do everything.
    pub fn anonymous() -> Self {
        Self {
            tenant: super::DEFAULT_TENANT,
            role: Role::Admin,
            key_id: None,
        }
    }
}

/// Checks a tenant name: 1 to 64 bytes of `[A-Za-z0-9._-]`.
pub fn validate_tenant(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("tenant is empty".to_owned());
    }
    if name.len() > MAX_TENANT_LEN {
        return Err(format!("tenant is longer than {MAX_TENANT_LEN} bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(
            "tenant may contain only letters, digits, `.`, `_` and `-` (A-Z a-z 0-9 . _ -)"
                .to_owned(),
        );
    }
    Ok(())
}

/// The tenant as a `&'static str`, shared by every request of that tenant.
///
/// Tenants reach a request only from stored keys, which an operator creates,
/// so the set is small and bounded by the keys table: keeping each name once
/// for the life of the process costs a few bytes per tenant, and lets every
/// handler keep borrowing its tenant while it consumes the request.
pub fn intern_tenant(name: &str) -> &'static str {
    static TENANTS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    if name == super::DEFAULT_TENANT {
        return super::DEFAULT_TENANT;
    }
    let mut guard = TENANTS.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(known) = set.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// Why a presented key was refused, before any look-up. Never holds the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the key does not have the form csk_<key id>_<secret>")]
    Malformed,
}

/// A key as presented by a client, split into its id and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey<'a> {
    pub key_id: &'a str,
    secret: &'a str,
}

// Never print the secret.
impl fmt::Debug for PresentedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Splits `csk_<key_id>_<secret>`. Anything else (other lengths, upper case,
/// percent escapes, `/`, `..`, NUL) is malformed: a real key never needs
/// escaping, so nothing is decoded.
pub fn parse_key(text: &str) -> Result<PresentedKey<'_>, KeyFormatError> {
    if text.len() != KEY_LEN {
        return Err(KeyFormatError::Malformed);
    }
    let rest = text
        .strip_prefix(KEY_PREFIX)
        .ok_or(KeyFormatError::Malformed)?;
    let (key_id, secret) = rest.split_once('_').ok_or(KeyFormatError::Malformed)?;
    if key_id.len() != KEY_ID_LEN
        || secret.len() != SECRET_LEN
        || !is_lower_hex(key_id)
        || !is_lower_hex(secret)
    {
        return Err(KeyFormatError::Malformed);
    }
    Ok(PresentedKey { key_id, secret })
}

/// Whether `text` has the form of a key id (for `keys revoke`).
pub fn is_key_id(text: &str) -> bool {
    text.len() == KEY_ID_LEN && is_lower_hex(text)
}

impl PresentedKey<'_> {
    /// Whether the secret hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &[u8]) -> bool {
        hash_secret(self.secret).ct_eq(stored).into()
    }
}

/// SHA-256 of a secret: what the keys table keeps. A plain hash is enough:
/// the secret is 256 random bits, not a password to stretch.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A freshly generated key: shown once, then only its hash is kept.
pub struct NewKey {
    pub key_id: String,
    pub secret_hash: Vec<u8>,
    /// The whole key, `csk_<key_id>_<secret>`.
    pub key: String,
}

// Never print the key.
impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The operating system's random generator failed.
#[derive(Debug, thiserror::Error)]
#[error("no random bytes from the operating system: {0}")]
pub struct RandomError(String);

/// A new key from the operating system's random generator.
pub fn generate_key() -> Result<NewKey, RandomError> {
    let mut id = [0u8; KEY_ID_LEN / 2];
    let mut secret = [0u8; SECRET_LEN / 2];
    getrandom::fill(&mut id).map_err(|e| RandomError(e.to_string()))?;
    getrandom::fill(&mut secret).map_err(|e| RandomError(e.to_string()))?;
    let key_id = hex::encode(id);
    let secret = hex::encode(secret);
    Ok(NewKey {
        key: format!("{KEY_PREFIX}{key_id}_{secret}"),
        secret_hash: hash_secret(&secret),
        key_id,
    })
}

/// A key as stored: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key_id: String,
    pub tenant: String,
    pub role: Role,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub create_time: super::UnixMs,
    pub last_used_time: Option<super::UnixMs>,
    pub revoke_time: Option<super::UnixMs>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_and_matches_its_hash() {
        let new = generate_key().unwrap();
        assert_eq!(new.key.len(), KEY_LEN);
        let parsed = parse_key(&new.key).unwrap();
        assert_eq!(parsed.key_id, new.key_id);
        assert!(parsed.matches(&new.secret_hash));
        let other = generate_key().unwrap();
        assert!(!parsed.matches(&other.secret_hash));
        assert!(!parsed.matches(&[]));
    }

    #[test]
    fn tricks_are_malformed() {
        let key = generate_key().unwrap().key;
        let upper = key.to_uppercase();
        // A fixed place in the secret: a random key need not hold any given
        // letter (replacing the first 'a' left some keys unchanged).
        let mut slash = key.clone();
        slash.replace_range(KEY_LEN - 2..KEY_LEN - 1, "/");
        let mut nul = key.clone();
        nul.replace_range(KEY_LEN - 1.., "\0");
        let escaped = format!("{}%2F", &key[..KEY_LEN - 3]);
        for bad in [
            "",
            "Bearer",
            "csk_",
            "csk_.._..",
            &upper,
            &slash,
            &nul,
            &escaped,
            &format!("{key}x"),
            &key[..KEY_LEN - 1],
            &"x".repeat(100_000),
        ] {
            assert_eq!(
                parse_key(bad).map(|k| k.key_id),
                Err(KeyFormatError::Malformed)
            );
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let new = generate_key().unwrap();
        let secret = &new.key[KEY_PREFIX.len() + KEY_ID_LEN + 1..];
        assert!(!format!("{new:?}").contains(secret));
        assert!(!format!("{:?}", parse_key(&new.key).unwrap()).contains(secret));
    }

    #[test]
    fn tenants_are_checked() {
        assert!(validate_tenant("acme-prod_1.eu").is_ok());
        assert!(validate_tenant(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "a/b", "租户", "a\0", &"a".repeat(65)] {
            assert!(validate_tenant(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles() {
        assert!(Role::Admin.allows(Role::Read) && Role::Admin.allows(Role::Ingest));
        assert!(Role::Read.allows(Role::Read) && !Role::Read.allows(Role::Ingest));
        assert!(!Role::Ingest.allows(Role::Read) && !Role::Ingest.allows(Role::Admin));
        assert_eq!(Role::parse("ingest"), Ok(Role::Ingest));
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn interning_gives_one_name() {
        let a = intern_tenant("tenant-a");
        let b = intern_tenant(&String::from("tenant-a"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(intern_tenant("default"), "default");
    }
}
