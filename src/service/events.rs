//! ExportCalls and WatchCalls: server streams fed by a producer task through
//! a bounded channel, so a client that stops reading holds the producer back
//! (backpressure) instead of making the server buffer. Export walks keyset
//! pages of the calls; watch reads the event log after a position, woken by
//! the store's in-process signal and polling for other replicas' writes.
//! Both end on the client's deadline, on cancellation (the stream is dropped)
//! and on server shutdown, with a status saying what to do next.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{CallScope, ServiceError};
use crate::domain::event::{CallEvent, ResumeError, WatchToken, export_scope, watch_scope};
use crate::domain::{self, CallFilter, CallOrder, CallQuery, PageToken, StoredCall, Violations};

/// Calls read per keyset page of an export (and the most per message).
pub const EXPORT_PAGE_CALLS: u32 = 500;
/// Events read from the log per query of a watch.
const WATCH_READ_EVENTS: u32 = 200;
/// Messages queued between a producer and the transport.
const CHANNEL_MESSAGES: usize = 4;

/// How watches behave; the defaults suit production.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// How often a watch reads the log when nothing in this process woke it:
    /// the longest a write through another replica waits to be seen.
    pub poll: Duration,
    /// A watcher whose stream has not taken a message for this long is cut
    /// off with RESOURCE_EXHAUSTED (it can resume with its last token).
    pub stall: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(250),
            stall: Duration::from_secs(10),
        }
    }
}

/// One message of an export: calls and the token that resumes after them.
#[derive(Debug, Clone)]
pub struct ExportPage {
    pub calls: Vec<StoredCall>,
    pub resume_token: String,
}

/// One event of a watch with the token that resumes after it.
#[derive(Debug, Clone)]
pub struct WatchedEvent {
    pub event: CallEvent,
    pub resume_token: String,
}

/// The items of a server stream, then the error that ended it, if any.
pub struct Feed<T> {
    items: mpsc::Receiver<T>,
    end: Option<oneshot::Receiver<ServiceError>>,
}

impl<T> futures_util::Stream for Feed<T> {
    type Item = Result<T, ServiceError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.items.poll_recv(cx) {
            Poll::Ready(Some(item)) => return Poll::Ready(Some(Ok(item))),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {}
        }
        // The producer is gone and everything it sent was taken: its error.
        let Some(end) = self.end.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(end).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.end = None;
                Poll::Ready(result.ok().map(Err))
            }
        }
    }
}

use std::future::Future;

/// The producer's side of a [`Feed`].
struct Sink<T> {
    items: mpsc::Sender<T>,
    end: oneshot::Sender<ServiceError>,
}

/// Why a producer stopped early.
enum Stop {
    /// The client went away: nobody to tell.
    Gone,
    Error(ServiceError),
}

impl From<ServiceError> for Stop {
    fn from(e: ServiceError) -> Self {
        Stop::Error(e)
    }
}

fn feed<T>() -> (Sink<T>, Feed<T>) {
    let (items, rx) = mpsc::channel(CHANNEL_MESSAGES);
    let (end, end_rx) = oneshot::channel();
    (
        Sink { items, end },
        Feed {
            items: rx,
            end: Some(end_rx),
        },
    )
}

/// What ends a stream besides its own work: the deadline and shutdown.
#[derive(Clone)]
struct Limits {
    deadline: Option<Instant>,
    shutdown: Option<watch::Receiver<bool>>,
}

impl Limits {
    /// Completes with the reason when the deadline passes or the server
    /// shuts down; never otherwise.
    async fn reached(&mut self) -> ServiceError {
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let shutdown = async {
            match self.shutdown.as_mut() {
                Some(rx) => {
                    if rx.wait_for(|stop| *stop).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = deadline => ServiceError::DeadlineExceeded("the stream ran until the client's deadline; resume with the last token"),
            _ = shutdown => ServiceError::Unavailable {
                message: "the server is shutting down; resume with the last token",
                retry_after: super::error::RETRY_AFTER,
            },
        }
    }
}

impl<T: Send + 'static> Sink<T> {
    /// Sends one item, waiting while the client does not read: at most
    /// `stall` when given (then the stream is cut off), and never past the
    /// limits.
    async fn send(
        &self,
        item: T,
        limits: &mut Limits,
        stall: Option<Duration>,
    ) -> Result<(), Stop> {
        let send = async {
            match stall {
                None => self.items.send(item).await.map_err(|_| Stop::Gone),
                Some(stall) => match self.items.send_timeout(item, stall).await {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Stop::Gone),
                    Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                        Err(Stop::Error(ServiceError::ResourceExhausted {
                            message: format!(
                                "watcher cut off: it took no event for {} ms; resume with the last token",
                                stall.as_millis()
                            ),
                            retry_after: None,
                        }))
                    }
                },
            }
        };
        tokio::select! {
            result = send => result,
            err = limits.reached() => Err(Stop::Error(err)),
        }
    }

    fn finish(self, result: Result<(), Stop>) {
        if let Err(Stop::Error(e)) = result {
            // Dropping `items` first lets the client drain what was queued,
            // then it reads this error.
            drop(self.items);
            let _ = self.end.send(e);
        }
    }
}

impl CallScope {
    /// Every call `filter` selects, oldest `call_time` first (then
    /// `call_id`), after `resume_token` if given. The token is checked here,
    /// before the stream starts.
    pub fn export_calls(
        &self,
        tenant: &str,
        filter: CallFilter,
        resume_token: &str,
        include_turns: bool,
        deadline: Option<Instant>,
    ) -> Result<Feed<ExportPage>, ServiceError> {
        let scope = export_scope(tenant, &filter);
        let after =
            if resume_token.is_empty() {
                None
            } else {
                Some(PageToken::decode(resume_token, &scope).map_err(|_| {
                    Violations::one("resume_token", ResumeError::Invalid.to_string())
                })?)
            };
        let (sink, feed) = feed();
        let mut limits = Limits {
            deadline,
            shutdown: self.shutdown.clone(),
        };
        let service = self.clone();
        let tenant = tenant.to_owned();
        tokio::spawn(async move {
            let query = CallQuery {
                filter,
                order: CallOrder::CallTimeAsc,
                page_size: EXPORT_PAGE_CALLS,
                after,
                include_total: false,
                total_limit: 0,
            };
            let result: Result<(), Stop> = async {
                // Room for the token and the message framing.
                let budget = service.max_response_bytes.saturating_sub(1024);
                // Each next page is read while this one is sent.
                let mut pages = service.store.call_pages(&tenant, query.clone());
                loop {
                    let page = tokio::select! {
                        page = pages.next() => match page {
                            Some(page) => page.map_err(ServiceError::from)?,
                            None => return Ok(()),
                        },
                        err = limits.reached() => return Err(err.into()),
                        _ = sink.items.closed() => return Err(Stop::Gone),
                    };
                    let more = page.next.is_some();
                    let mut calls = page.calls;
                    if include_turns {
                        service
                            .store
                            .attach_turns(&tenant, &mut calls)
                            .await
                            .map_err(ServiceError::from)?;
                    }
                    // A page larger than a message goes out in several, the
                    // next page (already being read) after its last one.
                    while !calls.is_empty() {
                        // At least one call: never an empty message.
                        let rest = calls.split_off(domain::calls_within(&calls, budget));
                        let Some(last) = calls.last() else { break };
                        let resume_token = PageToken::encode(&query.order.cursor_of(last), &scope);
                        sink.send(
                            ExportPage {
                                calls,
                                resume_token,
                            },
                            &mut limits,
                            None,
                        )
                        .await?;
                        calls = rest;
                    }
                    if !more {
                        return Ok(());
                    }
                }
            }
            .await;
            sink.finish(result);
        });
        Ok(feed)
    }

    /// The committed changes of the calls `filter` selects, in commit order:
    /// after `resume_token`'s event (replay, then live), or from now.
    pub async fn watch_calls(
        &self,
        tenant: &str,
        filter: CallFilter,
        resume_token: &str,
        deadline: Option<Instant>,
    ) -> Result<Feed<WatchedEvent>, ServiceError> {
        if filter.transcript.is_some() {
            return Err(Violations::one(
                "filter.transcript_contains",
                "is not supported by WatchCalls: events carry no dialogue turns",
            )
            .into());
        }
        let scope = watch_scope(tenant, &filter);
        let log = self.store.event_log(tenant).await?;
        let mut cursor = if resume_token.is_empty() {
            log.head
        } else {
            WatchToken::decode(resume_token, &scope)
                .and_then(|position| WatchToken::check(position, log))
                .map_err(resume_error)?
        };
        let (sink, feed) = feed();
        let mut limits = Limits {
            deadline,
            shutdown: self.shutdown.clone(),
        };
        let service = self.clone();
        let tenant = tenant.to_owned();
        let settings = self.watch;
        tokio::spawn(async move {
            let mut signal = service.store.event_signal();
            let result: Result<(), Stop> = async {
                loop {
                    // Marked seen before reading: a commit after this read
                    // wakes the wait below.
                    signal.borrow_and_update();
                    let events = tokio::select! {
                        events = service.store.events_after(&tenant, cursor, WATCH_READ_EVENTS) => events.map_err(ServiceError::from)?,
                        err = limits.reached() => return Err(err.into()),
                        _ = sink.items.closed() => return Err(Stop::Gone),
                    };
                    let full = events.len() == WATCH_READ_EVENTS as usize;
                    if let Some(first) = events.first()
                        && first.position != cursor + 1
                    {
                        // Positions have no holes: the retention removed
                        // events this watcher had not seen yet.
                        return Err(resume_error(ResumeError::TooOld {
                            purged_through: first.position - 1,
                        })
                        .into());
                    }
                    for event in events {
                        cursor = event.position;
                        if filter.matches(&event.call) {
                            let resume_token = WatchToken::encode(cursor, &scope);
                            sink.send(
                                WatchedEvent {
                                    event,
                                    resume_token,
                                },
                                &mut limits,
                                Some(settings.stall),
                            )
                            .await?;
                        }
                    }
                    if full {
                        continue;
                    }
                    tokio::select! {
                        _ = signal.changed() => {}
                        _ = tokio::time::sleep(settings.poll) => {}
                        err = limits.reached() => return Err(err.into()),
                        _ = sink.items.closed() => return Err(Stop::Gone),
                    }
                }
            }
            .await;
            sink.finish(result);
        });
        Ok(feed)
    }
}

fn resume_error(e: ResumeError) -> ServiceError {
    match e {
        ResumeError::Invalid => Violations::one("resume_token", e.to_string()).into(),
        ResumeError::TooOld { .. } => ServiceError::OutOfRange {
            field: "resume_token",
            message: e.to_string(),
        },
    }
}
