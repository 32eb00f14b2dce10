//! The per-key rate limit (`--rate-limit-per-key`, `--rate-limit-burst`): a
//! tower layer inside authentication, so it knows the key, around every
//! route of the shared stack, so gRPC, gRPC-Web and JSON calls of one key
//! draw on one budget. Beyond it a request is refused RESOURCE_EXHAUSTED
//! with a RetryInfo saying when the key has room again, before its handler
//! runs.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower::{Layer, Service};

use crate::domain::key::Identity;
use crate::metrics::Metrics;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Keys remembered before idle ones are forgotten.
const FORGET_ABOVE: usize = 4096;

/// A rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second a key may make on average; more than 0.
    pub per_second: f64,
    /// Requests a key may make at once after a quiet spell; at least 1.
    pub burst: u32,
}

impl RateLimit {
    /// The rate with its burst, or the rate's own (the requests of one
    /// second, at least 1) when `burst` is not given.
    pub fn new(per_second: f64, burst: Option<u32>) -> Result<Self, String> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(format!(
                "the rate limit must be a positive number of requests per second, not {per_second}"
            ));
        }
        let burst = match burst {
            Some(0) => return Err("the rate-limit burst must be at least 1".to_owned()),
            Some(burst) => burst,
            None => (per_second.ceil() as u32).max(1),
        };
        Ok(Self { per_second, burst })
    }

    fn quota(&self) -> Quota {
        let period = Duration::from_secs_f64(1.0 / self.per_second).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        // A period of at least 1 ns is never zero, so `with_period` answers.
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst)
    }
}

/// The layer: one limiter shared by every connection and both transports.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    metrics: Metrics,
}

impl RateLimitLayer {
    /// `None`: no limit (the default).
    pub fn new(limit: Option<RateLimit>, metrics: Metrics) -> Self {
        Self {
            limiter: limit.map(|l| Arc::new(RateLimiter::keyed(l.quota()))),
            metrics,
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    metrics: Metrics,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RateLimitService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // Health and reflection carry no identity, and `--auth none` has no
        // key: neither is limited.
        let key = request
            .extensions()
            .get::<Identity>()
            .and_then(|identity| identity.key_id.clone());
        if let (Some(limiter), Some(key)) = (&self.limiter, key) {
            // One entry per key seen; revoked keys' entries would stay
            // forever: past a few thousand, drop the ones back at a full
            // burst (forgetting them changes nothing).
            if limiter.len() > FORGET_ABOVE {
                limiter.retain_recent();
            }
            if let Err(not_until) = limiter.check_key(&key) {
                let wait = not_until.wait_time_from(limiter.clock().now());
                // RetryInfo in whole milliseconds, rounded up: retrying at
                // the time it says finds room.
                let retry = Duration::from_millis(wait.as_millis() as u64 + 1);
                tracing::info!(
                    key_id = key,
                    retry_ms = retry.as_millis() as u64,
                    "rate limit"
                );
                let status = super::ops::shed(
                    &self.metrics,
                    "rate_limit",
                    format!(
                        "rate limit of this API key reached, retry in {} ms",
                        retry.as_millis()
                    ),
                    retry,
                );
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        Box::pin(async move { inner.call(request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_bursts() {
        assert_eq!(
            RateLimit::new(5.0, None),
            Ok(RateLimit {
                per_second: 5.0,
                burst: 5
            })
        );
        assert_eq!(RateLimit::new(0.5, None).map(|l| l.burst), Ok(1));
        assert_eq!(RateLimit::new(2.0, Some(10)).map(|l| l.burst), Ok(10));
        assert!(RateLimit::new(0.0, None).is_err());
        assert!(RateLimit::new(-1.0, None).is_err());
        assert!(RateLimit::new(f64::NAN, None).is_err());
        assert!(RateLimit::new(1.0, Some(0)).is_err());
        let quota = RateLimit::new(4.0, Some(3)).map(|l| l.quota());
        assert_eq!(
            quota.map(|q| (q.replenish_interval(), q.burst_size().get())),
            Ok((Duration::from_millis(250), 3))
        );
    }

    #[test]
    fn each_key_has_its_own_budget() {
        let limiter = RateLimiter::keyed(
            RateLimit::new(1.0, Some(2))
                .map(|l| l.quota())
                .unwrap_or_else(|_| Quota::per_second(NonZeroU32::MIN)),
        );
        let a = "key-a".to_owned();
        let b = "key-b".to_owned();
        assert!(limiter.check_key(&a).is_ok());
        assert!(limiter.check_key(&a).is_ok());
        assert!(limiter.check_key(&a).is_err(), "past the burst");
        assert!(limiter.check_key(&b).is_ok(), "another key is unaffected");
    }
}
