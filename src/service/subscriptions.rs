//! SubscriptionService's operations: registering webhook URLs (with the
//! address rules that keep callscope from calling into its own network),
//! listing them and their deliveries, deleting them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{CallScope, ServiceError};
use crate::domain::subscription::{
    Delivery, EventKind, MAX_SUBSCRIPTIONS_PER_TENANT, Subscription, SubscriptionState,
    check_url_form, new_secret, refused_address,
};
use crate::domain::{self, CallFilter, Violations};

/// Default and largest ListDeliveries page.
const DEFAULT_DELIVERIES: u32 = 50;
const MAX_DELIVERIES: u32 = 1000;
/// How long resolving a subscription's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which addresses webhooks may be sent to.
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    /// `serve --allow-private-webhooks`: loopback and private addresses too.
    pub allow_private: bool,
    /// callscope's own listeners: never a webhook target.
    pub own: Vec<SocketAddr>,
}

impl UrlPolicy {
    /// Why `addr` may not receive webhooks, or `None`.
    pub fn refuses(&self, addr: SocketAddr) -> Option<String> {
        let ip = canonical(addr.ip());
        let own = self.own.iter().any(|o| {
            o.port() == addr.port()
                && (ip.is_loopback() || ip.is_unspecified() || canonical(o.ip()) == ip)
        });
        if own {
            return Some(format!("points at callscope's own port {}", addr.port()));
        }
        if self.allow_private {
            return None;
        }
        refused_address(ip).map(|why| {
            format!("resolves to {ip}, which {why}; refused unless the server runs with --allow-private-webhooks")
        })
    }

    /// Resolves `host` and checks every address it has; answers them.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Unusable> {
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| {
                    Unusable::Unresolved(format!("host `{host}` did not resolve in time"))
                })?
                .map_err(|_| Unusable::Unresolved(format!("host `{host}` cannot be resolved")))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(Unusable::Unresolved(format!(
                "host `{host}` has no address"
            )));
        }
        // Every address: a name with one public and one private address
        // could otherwise be used to reach the private one.
        for addr in &addrs {
            if let Some(why) = self.refuses(*addr) {
                return Err(Unusable::Refused(why));
            }
        }
        Ok(addrs)
    }
}

/// Why a webhook host cannot be sent to (now).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// DNS gave no address (perhaps only for now).
    #[error("{0}")]
    Unresolved(String),
    /// An address the policy refuses.
    #[error("{0}")]
    Refused(String),
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What CreateSubscription asks for, converted but not yet checked.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub url: String,
    pub filter: CallFilter,
    pub kinds: Vec<EventKind>,
}

impl CallScope {
    /// Registers a webhook; the answer carries the signing secret, which is
    /// never shown again. Events committed from now on are delivered.
    pub async fn create_subscription(
        &self,
        tenant: &str,
        new: NewSubscription,
    ) -> Result<Subscription, ServiceError> {
        let mut v = Violations::new();
        match check_url_form(&new.url) {
            // A name that does not resolve yet is accepted: every delivery
            // resolves and checks again, and that is the check that counts.
            Ok((host, port)) => {
                if let Err(Unusable::Refused(why)) = self.webhooks.resolve(&host, port).await {
                    v.add("url", why);
                }
            }
            Err(why) => v.add("url", why),
        }
        if new.filter.transcript.is_some() {
            // Events carry calls without their dialogue turns.
            v.add(
                "filter.transcript_contains",
                "is not supported for subscriptions: events carry calls without turns",
            );
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        let mut kinds = new.kinds;
        kinds.sort_by_key(|k| k.code());
        kinds.dedup();
        let head = self.store.event_log(tenant).await?.head;
        let subscription = Subscription {
            id: format!("sub_{}", uuid::Uuid::new_v4().simple()),
            url: new.url,
            filter: new.filter,
            kinds,
            secret: new_secret(),
            create_time: domain::now_ms(),
            state: SubscriptionState::Active,
            last_error: String::new(),
            position: head,
        };
        if !self
            .store
            .insert_subscription(tenant, &subscription, MAX_SUBSCRIPTIONS_PER_TENANT)
            .await?
        {
            return Err(ServiceError::ResourceExhausted {
                message: format!(
                    "a tenant may have at most {MAX_SUBSCRIPTIONS_PER_TENANT} subscriptions"
                ),
                retry_after: None,
            });
        }
        tracing::info!(
            tenant,
            subscription_id = subscription.id,
            "subscription created"
        );
        Ok(subscription)
    }

    /// The tenant's subscriptions, oldest first, secrets cleared.
    pub async fn list_subscriptions(
        &self,
        tenant: &str,
    ) -> Result<Vec<Subscription>, ServiceError> {
        let mut subs = self.store.list_subscriptions(tenant).await?;
        for s in &mut subs {
            s.secret.clear();
        }
        Ok(subs)
    }

    /// Deletes a subscription and its delivery history; a delivery in flight
    /// finishes but is not recorded.
    pub async fn delete_subscription(&self, tenant: &str, id: &str) -> Result<(), ServiceError> {
        check_id(id)?;
        if self.store.delete_subscription(tenant, id).await? {
            tracing::info!(tenant, subscription_id = id, "subscription deleted");
            Ok(())
        } else {
            Err(not_found(id))
        }
    }

    /// A subscription's latest deliveries, newest event first.
    pub async fn list_deliveries(
        &self,
        tenant: &str,
        id: &str,
        page_size: i32,
    ) -> Result<Vec<Delivery>, ServiceError> {
        check_id(id)?;
        let limit = match page_size {
            n if n < 0 => {
                return Err(Violations::one("page_size", "must not be negative").into());
            }
            0 => DEFAULT_DELIVERIES,
            n => (n as u32).min(MAX_DELIVERIES),
        };
        if self.store.get_subscription(tenant, id).await?.is_none() {
            return Err(not_found(id));
        }
        Ok(self.store.list_deliveries(tenant, id, limit).await?)
    }
}

fn check_id(id: &str) -> Result<(), ServiceError> {
    let mut v = Violations::new();
    domain::limits::check_required_id(&mut v, "subscription_id", id);
    if v.is_empty() { Ok(()) } else { Err(v.into()) }
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound {
        what: "subscription",
        id: id.chars().take(64).collect(),
    }
}
