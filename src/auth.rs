//! Authentication settings: `--auth none|keys`, the refusal to serve a
//! non-loopback address without keys, and the `callscope keys` commands.
//! The checks themselves are in `service::keys`; the gRPC layer in
//! `api::auth`, the webhooks' in `http::auth`.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;

use crate::config::{KeysCommand, KeysConfig};
use crate::domain::UnixMs;
use crate::domain::key::StoredKey;
use crate::service::keys::{self, Authenticator};
use crate::store::{Store, StoreOptions};

/// How requests are authenticated (`serve --auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthMode {
    /// No keys: every request acts for the tenant `default`. Only loopback
    /// addresses may be served.
    #[default]
    None,
    /// Every gRPC call and webhook needs an API key (`callscope keys create`).
    Keys,
}

impl AuthMode {
    /// The authenticator for this mode over `store`.
    pub fn authenticator(self, store: &Store) -> Authenticator {
        match self {
            AuthMode::None => Authenticator::none(),
            AuthMode::Keys => Authenticator::keys(store.clone()),
        }
    }
}

/// Refuses to serve anything but loopback (127.0.0.0/8, ::1) without keys,
/// as Redis's protected mode does: with `--auth none` anyone who can reach
/// the port reads and writes the `default` tenant.
pub fn check_exposure(mode: AuthMode, listeners: &[(&str, SocketAddr)]) -> anyhow::Result<()> {
    if mode == AuthMode::Keys {
        return Ok(());
    }
    for (flag, addr) in listeners {
        if !addr.ip().to_canonical().is_loopback() {
            anyhow::bail!(
                "refusing to listen on {addr} ({flag}) without authentication: with --auth none \
                 anyone who reaches the port acts for the tenant `default`. Start with --auth keys \
                 (create keys with `callscope keys create`), or listen on a loopback address \
                 (127.0.0.1 or ::1)"
            );
        }
    }
    Ok(())
}

/// Runs a `callscope keys` command, writing its answer to `out`.
pub async fn run_keys(config: &KeysConfig, out: &mut impl Write) -> anyhow::Result<()> {
    let store = Store::connect(&StoreOptions {
        url: config.database_url.clone(),
        read_url: None,
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(30),
        busy_timeout: std::time::Duration::from_secs(30),
    })
    .await
    .with_context(|| format!("opening {}", crate::store::redact(&config.database_url)))?;
    match &config.command {
        KeysCommand::Create { tenant, role, name } => {
            let (stored, key) = keys::create_key(&store, tenant, *role, name).await?;
            writeln!(
                out,
                "created key {} for tenant {} with role {}; it is shown only this once:",
                stored.key_id, stored.tenant, stored.role
            )?;
            // Alone on the last line, for scripts: `… | tail -n1`.
            writeln!(out, "{key}")?;
        }
        KeysCommand::List { tenant } => {
            for key in keys::list_keys(&store, tenant.as_deref()).await? {
                writeln!(out, "{}", list_line(&key))?;
            }
        }
        KeysCommand::Revoke { key_id } => {
            keys::revoke_key(&store, key_id).await?;
            writeln!(
                out,
                "revoked key {key_id}; every server refuses it within {} s",
                keys::KEY_CACHE_TTL.as_secs()
            )?;
        }
    }
    Ok(())
}

/// One key of `keys list`, tab-separated: id, tenant, role, name (`-` when
/// none), created, last used (`never`), and `active` or `revoked <time>`.
fn list_line(key: &StoredKey) -> String {
    let name = if key.name.is_empty() { "-" } else { &key.name };
    let last_used = key.last_used_time.map_or("never".to_owned(), time);
    let state = key
        .revoke_time
        .map_or("active".to_owned(), |t| format!("revoked {}", time(t)));
    format!(
        "{}\t{}\t{}\t{name}\t{}\t{last_used}\t{state}",
        key.key_id,
        key.tenant,
        key.role,
        time(key.create_time)
    )
}

/// Milliseconds since the epoch as RFC 3339 (UTC, whole seconds).
fn time(ms: UnixMs) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_keys() {
        let ok = |a: &str| check_exposure(AuthMode::None, &[("--grpc-addr", a.parse().unwrap())]);
        assert!(ok("127.0.0.1:50051").is_ok());
        assert!(ok("127.9.9.9:0").is_ok());
        assert!(ok("[::1]:0").is_ok());
        assert!(ok("[::ffff:127.0.0.1]:0").is_ok());
        for exposed in ["0.0.0.0:0", "[::]:0", "10.0.0.1:80", "[::ffff:10.0.0.1]:0"] {
            let err = ok(exposed).unwrap_err().to_string();
            assert!(err.contains("--auth keys"), "{err}");
        }
        assert!(
            check_exposure(
                AuthMode::Keys,
                &[("--grpc-addr", "0.0.0.0:0".parse().unwrap())]
            )
            .is_ok()
        );
    }
}
