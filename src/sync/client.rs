//! The HTTP client of a vendor's query API: timeouts, a per-source request
//! rate, retries with exponential backoff and jitter on 5xx, 429 and
//! transport failures (honouring `Retry-After`) within a per-run retry
//! budget, and a cap on the size of an answer.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};

use super::SyncSettings;

/// Why a vendor request failed for good.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VendorError {
    /// The vendor refused this request (4xx other than 429): retrying the
    /// same request cannot help.
    #[error("{method} {url} answered HTTP {status}{detail}")]
    Refused {
        method: Method,
        url: String,
        status: u16,
        detail: String,
    },
    /// Unreachable, timing out or failing (5xx, 429) after every retry.
    #[error("{method} {url}: {reason}")]
    Unavailable {
        method: Method,
        url: String,
        reason: String,
    },
    /// The answer passed the size limit.
    #[error("{method} {url}: the answer is larger than the {limit}-byte limit")]
    TooLarge {
        method: Method,
        url: String,
        limit: usize,
    },
}

impl VendorError {
    /// 404 and 410: what was asked for is not there (a vanished record).
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            VendorError::Refused {
                status: 404 | 410,
                ..
            }
        )
    }

    /// A refusal of this one request rather than a vendor that cannot serve.
    pub fn is_refusal(&self) -> bool {
        matches!(self, VendorError::Refused { .. })
    }
}

/// One source's client for one run: its counters are the run's.
pub struct VendorClient {
    http: reqwest::Client,
    base: Url,
    headers: HeaderMap,
    limiter: Arc<DefaultDirectRateLimiter>,
    settings: SyncSettings,
    /// Retries left in this run.
    budget: AtomicI64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
}

/// A limiter for one source at `per_second` requests.
pub fn rate_limiter(per_second: u32) -> Arc<DefaultDirectRateLimiter> {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(Quota::per_second(rate)))
}

impl VendorClient {
    /// A client for `base_url` sending `headers` with every request. Header
    /// values are marked sensitive, so no debug output shows them.
    pub fn new(
        base_url: &str,
        headers: &std::collections::BTreeMap<String, String>,
        settings: &SyncSettings,
        limiter: Arc<DefaultDirectRateLimiter>,
    ) -> Result<Self, String> {
        let base = Url::parse(base_url).map_err(|e| format!("base_url: {e}"))?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("header name `{name}` is not valid"))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of header `{name}` is not valid"))?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.request_timeout)
            .timeout(settings.request_timeout)
            .user_agent(concat!("callscope/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Self {
            http,
            base,
            headers: map,
            limiter,
            settings: settings.clone(),
            budget: AtomicI64::new(i64::from(settings.retry_budget)),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        })
    }

    /// The URL of a vendor path relative to the base URL.
    pub fn url(&self, path: &str) -> Result<Url, String> {
        self.base.join(path).map_err(|e| format!("{path}: {e}"))
    }

    /// `POST path` with a JSON body; the answer's bytes.
    pub async fn post_json(
        &self,
        url: &Url,
        body: &serde_json::Value,
    ) -> Result<Vec<u8>, VendorError> {
        self.send(Method::POST, url, Some(body)).await
    }

    /// `GET url`; the answer's bytes.
    pub async fn get(&self, url: &Url) -> Result<Vec<u8>, VendorError> {
        self.send(Method::GET, url, None).await
    }

    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, VendorError> {
        let shown = url.to_string();
        let mut attempt: u32 = 0;
        loop {
            self.limiter.until_ready().await;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .headers(self.headers.clone());
            if let Some(body) = body {
                request = request.json(body);
            }
            let (reason, retry_after) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        match self.read_body(response).await {
                            Ok(Some(bytes)) => return Ok(bytes),
                            Ok(None) => {
                                return Err(VendorError::TooLarge {
                                    method,
                                    url: shown,
                                    limit: self.settings.max_page_bytes,
                                });
                            }
                            Err(e) => (format!("reading the answer: {}", error_chain(&e)), None),
                        }
                    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        let wait = retry_after(response.headers());
                        (format!("HTTP {}", status.as_u16()), wait)
                    } else {
                        let detail = self.snippet(response).await;
                        return Err(VendorError::Refused {
                            method,
                            url: shown,
                            status: status.as_u16(),
                            detail,
                        });
                    }
                }
                Err(e) => (error_chain(&e), None),
            };
            attempt += 1;
            let out_of_budget = self.budget.fetch_sub(1, Ordering::Relaxed) <= 0;
            if attempt >= self.settings.max_attempts || out_of_budget {
                let why = if out_of_budget {
                    "the run's retry budget is spent"
                } else {
                    "no retries left"
                };
                return Err(VendorError::Unavailable {
                    method,
                    url: shown,
                    reason: format!("{reason} after {attempt} attempt(s); {why}"),
                });
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            let wait = retry_after
                .map(|d| d.min(self.settings.max_backoff))
                .unwrap_or_else(|| self.backoff(attempt));
            tracing::debug!(%method, url = %shown, attempt, wait_ms = wait.as_millis() as u64, %reason, "vendor request retried");
            tokio::time::sleep(wait).await;
        }
    }

    /// Exponential backoff with full jitter: a random wait up to
    /// base * 2^(attempt-1), capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .settings
            .base_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.settings.max_backoff);
        let ms = ceiling.as_millis().max(1) as u64;
        // At least half the ceiling: retries never bunch up at zero.
        Duration::from_millis(ms / 2 + rand::random_range(0..=ms / 2))
    }

    /// The body, or `None` once it passes the size limit (read no further).
    async fn read_body(
        &self,
        mut response: reqwest::Response,
    ) -> Result<Option<Vec<u8>>, reqwest::Error> {
        let limit = self.settings.max_page_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Ok(None);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > limit {
                return Ok(None);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }

    /// The start of an error answer, for the message (never the request).
    async fn snippet(&self, response: reqwest::Response) -> String {
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs; treated
/// as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// An error with its causes, as one line ("error sending request: connection refused").
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
