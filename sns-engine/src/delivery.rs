//! Delivery: per-subscription queues, bounded concurrency, attempts and retries.
//!
//! Why it is shaped so:
//! * Each subscription owns a bounded `VecDeque` (a parking_lot mutex held only
//!   to push or pop) and a semaphore of `max_in_flight_per_subscription` slots.
//!   Publishing pushes the message and, if a slot is free, spawns a drain task
//!   holding that slot; the task delivers queued messages one after another
//!   and ends when the queue is empty. No task exists for an idle subscription.
//! * A dead or black-holed subscriber can hold only its own slots (for the
//!   attempt timeout and its retry waits) and fill only its own queue; once full,
//!   new messages for it are dropped and counted (`dropped`). Others never wait
//!   behind it, and memory stays bounded by subscriptions x queue capacity.
//! * Retries keep their slot while waiting, so a failing subscriber is slowed
//!   down rather than hammered, as SNS's per-endpoint throttling does.
//! * Connections go through one pooled keep-alive client whose resolver applies
//!   the endpoint policy to every address it connects to (no DNS rebinding to
//!   the metadata service after a subscription was admitted).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue};
use hq_core::domain::{check_ip, EffectivePolicy, EndpointPolicy, SubscriptionStatus};
use tokio::sync::OwnedSemaphorePermit;

use crate::engine::{Core, Sub};
use crate::envelope::Outgoing;

/// How much of a subscriber's answer is read (so the connection can be reused);
/// a longer answer is cut and its connection closed.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Resolves subscriber host names and keeps only addresses the policy allows.
pub(crate) struct PolicyResolver {
    pub policy: EndpointPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| check_ip(a.ip(), policy).is_ok())
                .collect();
            if allowed.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host}: no address allowed by the endpoint policy").into();
                return Err(e);
            }
            let it: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(it)
        })
    }
}

/// Counts a spawned delivery task until it ends, so shutdown can wait for it.
struct TaskGuard(Arc<Core>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.active_tasks.fetch_sub(1, Relaxed);
    }
}

impl Core {
    /// Queues `out` for `sub`, or counts it dropped if the queue is full.
    pub(crate) fn enqueue(self: &Arc<Self>, sub: &Arc<Sub>, out: Arc<Outgoing>) {
        {
            let mut q = sub.queue.lock();
            if q.len() >= self.config.queue_capacity {
                sub.stats.dropped.fetch_add(1, Relaxed);
                self.counters.dropped.fetch_add(1, Relaxed);
                return;
            }
            q.push_back(out);
        }
        if let Ok(permit) = sub.slots.clone().try_acquire_owned() {
            self.spawn_drain(sub.clone(), permit);
        }
    }

    fn spawn_drain(self: &Arc<Self>, sub: Arc<Sub>, permit: OwnedSemaphorePermit) {
        self.active_tasks.fetch_add(1, Relaxed);
        let core = self.clone();
        tokio::spawn(async move {
            let _guard = TaskGuard(core.clone());
            core.drain(sub, permit).await;
        });
    }

    /// Delivers queued messages while holding one slot. Before ending it looks
    /// once more, after giving the slot back: a message pushed meanwhile by a
    /// publisher that found no free slot is never stranded.
    async fn drain(&self, sub: Arc<Sub>, mut permit: OwnedSemaphorePermit) {
        loop {
            loop {
                let next = sub.queue.lock().pop_front();
                match next {
                    Some(out) => self.deliver(&sub, out).await,
                    None => break,
                }
            }
            drop(permit);
            if sub.queue.lock().is_empty() {
                return;
            }
            match sub.slots.clone().try_acquire_owned() {
                Ok(p) => permit = p,
                Err(_) => return, // another task holds a slot and will drain
            }
        }
    }

    /// One message to one subscriber, with retries under its delivery policy.
    async fn deliver(&self, sub: &Sub, out: Arc<Outgoing>) {
        let policy = sub.effective_policy();
        let mut shutdown = self.shutdown_rx.clone();
        let mut retry = 0u32;
        loop {
            if sub.removed.load(Relaxed) || self.closing.load(Relaxed) {
                return;
            }
            // A confirmation is not re-sent once the subscription is confirmed.
            if !out.is_notification && sub.status() == SubscriptionStatus::Confirmed {
                return;
            }
            if let Some(rate) = policy.max_receives_per_second {
                self.pace(sub, rate).await;
            }
            self.counters.in_flight.fetch_add(1, Relaxed);
            let outcome = self.attempt(sub, &out, &policy).await;
            self.counters.in_flight.fetch_sub(1, Relaxed);
            match outcome {
                Ok(()) => {
                    if out.is_notification {
                        let latency = out.published_at.elapsed();
                        sub.stats.delivered.fetch_add(1, Relaxed);
                        sub.stats.latency.record(latency);
                        self.counters.deliveries_ok.fetch_add(1, Relaxed);
                        self.counters.latency.record(latency);
                    } else {
                        self.counters.confirmations_sent.fetch_add(1, Relaxed);
                    }
                    sub.stats
                        .last_ok_ms
                        .store(hq_core::clock::now_millis(), Relaxed);
                    return;
                }
                Err(error) => {
                    sub.stats.failed_attempts.fetch_add(1, Relaxed);
                    self.counters.attempts_failed.fetch_add(1, Relaxed);
                    tracing::debug!(subscription = %sub.arn, retry, %error, "delivery attempt failed");
                    *sub.stats.last_error.lock() = Some(error);
                    if retry >= policy.retry.num_retries {
                        sub.stats.abandoned.fetch_add(1, Relaxed);
                        self.counters.abandoned.fetch_add(1, Relaxed);
                        return;
                    }
                    retry += 1;
                    let delay = policy.retry.delay_before_retry(retry);
                    if !delay.is_zero() {
                        sub.stats.retries_pending.fetch_add(1, Relaxed);
                        self.counters.retries_pending.fetch_add(1, Relaxed);
                        let stopped = tokio::select! {
                            _ = tokio::time::sleep(delay) => false,
                            _ = shutdown.wait_for(|closing| *closing) => true,
                        };
                        sub.stats.retries_pending.fetch_sub(1, Relaxed);
                        self.counters.retries_pending.fetch_sub(1, Relaxed);
                        if stopped {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Waits for the subscription's next slot under `maxReceivesPerSecond`.
    async fn pace(&self, sub: &Sub, per_second: u32) {
        let interval = Duration::from_secs_f64(1.0 / per_second.max(1) as f64);
        let at = {
            let mut next = sub.next_slot.lock();
            let now = Instant::now();
            let slot = match *next {
                Some(t) if t > now => t,
                _ => now,
            };
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(at.into()).await;
    }

    /// One HTTP POST. Any 2xx is success; the error says what went wrong.
    async fn attempt(
        &self,
        sub: &Sub,
        out: &Outgoing,
        policy: &EffectivePolicy,
    ) -> Result<(), String> {
        if let Some(ip) = sub.literal_ip {
            check_ip(ip, self.config.endpoint_policy).map_err(|e| e.to_string())?;
        }
        let raw = out.is_notification && sub.raw_delivery();
        let body = out.body_for(&sub.unsubscribe_json, raw);
        let content_type = match &policy.content_type {
            Some(ct) => HeaderValue::from_str(ct)
                .unwrap_or(HeaderValue::from_static("text/plain; charset=UTF-8")),
            None => HeaderValue::from_static("text/plain; charset=UTF-8"),
        };
        let mut req = self
            .client
            .post(sub.url.clone())
            .timeout(self.config.attempt_timeout)
            .header(header::CONTENT_TYPE, content_type)
            .header("x-amz-sns-message-type", out.kind.clone())
            .header("x-amz-sns-message-id", out.message_id.clone())
            .header("x-amz-sns-topic-arn", out.topic_arn.clone());
        if out.is_notification {
            req = req.header("x-amz-sns-subscription-arn", sub.arn_header.clone());
        }
        if raw {
            req = req.header("x-amz-sns-rawdelivery", "true");
        }
        let mut resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e, self.config.attempt_timeout))?;
        let status = resp.status();
        let mut read = 0usize;
        while let Ok(Some(chunk)) = resp.chunk().await {
            read += chunk.len();
            if read > MAX_ANSWER_BYTES {
                break;
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

/// A short, human explanation of a failed attempt (shown in the portal).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs_f64());
    }
    let mut msg = if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut depth = 0;
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
        depth += 1;
        if depth >= 4 {
            break;
        }
    }
    if msg.len() > 300 {
        let mut cut = 300;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    msg
}
