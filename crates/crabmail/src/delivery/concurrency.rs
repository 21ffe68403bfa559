//! How many deliveries run at once to one destination, between `queue.min_per_destination` and
//! `queue.max_per_destination`, set by whether our own mail queues at the remote.
//!
//! The remote's answer to the final dot is the window in which a crash sends a message twice
//! (RFC 1047): the remote has the message, we have no reply yet. Connections beyond what a
//! destination serves at once do not make it faster; they queue our messages there, each inside
//! that window. Each answer is paired with how many of our dots were already waiting at that
//! destination when it was sent (its depth). A remote that serves us in parallel answers in the
//! same time whatever the depth; one that serves us one after another answers later the deeper
//! the message was sent. A running regression of answer time on depth says how much of the
//! average answer is spent behind our own mail: over half, and the limit shrinks by one
//! connection per round of deliveries (a round being `limit` answers); under a quarter, it
//! grows by one; between, it holds. Slow answers alone (a long path, a content filter, noise)
//! do not shrink it, because they do not grow with depth.
//!
//! A destination starts at `START` (Postfix's initial destination concurrency) within the
//! bounds; `min == max` fixes it. State is per node and in memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Connections a destination starts with (within the bounds).
const START: usize = 5;
/// Share of the answer time spent behind our own mail above which the limit shrinks.
const SHRINK_ABOVE: f64 = 0.5;
/// Share below which it grows.
const GROW_BELOW: f64 = 0.25;
/// Weight of one answer in the running averages once they are warm (about the last 40 count).
const SMOOTHING: f64 = 0.05;

/// The adaptive limit of one destination. `acquire` waits for a slot.
pub struct Limiter {
    /// The destination, for the log.
    name: String,
    min: usize,
    max: usize,
    state: Mutex<State>,
    freed: Notify,
    /// Our final dots sent to this destination and not yet answered.
    dots: AtomicUsize,
}

#[derive(Debug, Clone, Default)]
struct State {
    limit: f64,
    in_flight: usize,
    /// Answers seen (the averages weigh all equally until there are enough of them).
    answers: u32,
    /// Running means of depth, answer time (seconds), depth squared, depth times answer time.
    depth: f64,
    wait: f64,
    depth2: f64,
    depth_wait: f64,
}

impl State {
    /// Of the average answer time, the share explained by our own mail ahead of it.
    fn queued_share(&self) -> f64 {
        let variance = self.depth2 - self.depth * self.depth;
        if variance < 1e-3 || self.wait <= 0.0 {
            // Every answer had the same depth: nothing says our mail queued.
            return 0.0;
        }
        let slope = (self.depth_wait - self.depth * self.wait) / variance;
        slope * self.depth / self.wait
    }
}

/// One delivery's slot; dropping it frees the slot.
pub struct Slot {
    limiter: Arc<Limiter>,
}

/// A final dot on its way: made by `Slot::dot_sent`, consumed by `answered` (or dropped when the
/// connection failed first).
pub struct Dot<'a> {
    limiter: &'a Limiter,
    depth: usize,
    sent: tokio::time::Instant,
}

impl Limiter {
    pub fn new(name: &str, min: usize, max: usize) -> Limiter {
        let max = max.max(1);
        let min = min.clamp(1, max);
        Limiter {
            name: name.to_owned(),
            min,
            max,
            state: Mutex::new(State {
                limit: START.clamp(min, max) as f64,
                ..State::default()
            }),
            freed: Notify::new(),
            dots: AtomicUsize::new(0),
        }
    }

    /// Waits until this destination has a free slot.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a slot freed in between still wakes us.
            freed.as_mut().enable();
            if let Some(slot) = self.try_acquire() {
                return slot;
            }
            freed.await;
        }
    }

    fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let mut state = self.lock();
        if state.in_flight >= self.allowed(&state) {
            return None;
        }
        state.in_flight += 1;
        Some(Slot {
            limiter: self.clone(),
        })
    }

    /// Deliveries allowed at once now.
    pub fn current(&self) -> usize {
        self.allowed(&self.lock())
    }

    fn allowed(&self, state: &State) -> usize {
        (state.limit as usize).clamp(self.min, self.max)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One answer to a final dot sent with `depth` of ours already waiting there.
    fn observe(&self, state: &mut State, depth: usize, wait: Duration) {
        if self.min == self.max {
            return;
        }
        let (d, w) = (depth as f64, wait.as_secs_f64());
        state.answers = state.answers.saturating_add(1);
        let weight = (1.0 / f64::from(state.answers)).max(SMOOTHING);
        let update = |mean: &mut f64, x: f64| *mean += weight * (x - *mean);
        update(&mut state.depth, d);
        update(&mut state.wait, w);
        update(&mut state.depth2, d * d);
        update(&mut state.depth_wait, d * w);
        let share = state.queued_share();
        let step = 1.0 / state.limit.max(1.0);
        if share > SHRINK_ABOVE {
            state.limit = (state.limit - step).max(self.min as f64);
        } else if share < GROW_BELOW {
            state.limit = (state.limit + step).min(self.max as f64);
        }
    }
}

impl Slot {
    /// The final dot is about to be written.
    pub fn dot_sent(&self) -> Dot<'_> {
        let depth = self.limiter.dots.fetch_add(1, Ordering::Relaxed);
        Dot {
            limiter: &self.limiter,
            depth,
            sent: tokio::time::Instant::now(),
        }
    }
}

impl Dot<'_> {
    /// The remote answered the dot.
    pub fn answered(self) {
        let limiter = self.limiter;
        let wait = self.sent.elapsed();
        let mut state = limiter.lock();
        let before = limiter.allowed(&state);
        limiter.observe(&mut state, self.depth, wait);
        let now = limiter.allowed(&state);
        if now != before {
            tracing::debug!(destination = %limiter.name, connections = now, answer_ms = wait.as_secs_f64() * 1e3, "delivery: concurrency changed");
        }
    }
}

impl Drop for Dot<'_> {
    fn drop(&mut self) {
        self.limiter.dots.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limiter.lock().in_flight -= 1;
        self.limiter.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `rounds` answers through the limiter, as many deliveries at a time as it allows:
    /// the answers of one round were sent at depths 0, 1, ... limit - 1, each answered after
    /// `wait(depth)`.
    fn drive(limiter: &Limiter, rounds: usize, mut wait: impl FnMut(usize) -> Duration) {
        let mut depth = 0;
        for _ in 0..rounds {
            let mut state = limiter.lock();
            let n = limiter.allowed(&state);
            depth = if depth + 1 < n { depth + 1 } else { 0 };
            let w = wait(depth);
            limiter.observe(&mut state, depth, w);
        }
    }

    #[test]
    fn a_remote_that_serves_us_in_parallel_gets_every_connection() {
        let limiter = Limiter::new("example.test", 1, 20);
        assert_eq!(limiter.current(), START);
        // 40 ms, however many we send: a long path, nothing queued at the remote.
        drive(&limiter, 400, |_| Duration::from_millis(40));
        assert_eq!(limiter.current(), 20);
    }

    #[test]
    fn slow_noisy_answers_alone_do_not_shrink_the_limit() {
        let limiter = Limiter::new("example.test", 1, 20);
        // Answers spread from 20 to 180 ms at random, whatever the depth.
        let mut seed = 7u64;
        drive(&limiter, 20_000, move |_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Duration::from_micros(20_000 + (seed >> 33) % 160_000)
        });
        assert!(limiter.current() >= 15, "limit {}", limiter.current());
    }

    #[test]
    fn a_remote_that_serves_us_one_at_a_time_gets_few_connections() {
        let limiter = Limiter::new("example.test", 1, 20);
        // Each answer waits for every dot sent before it: 0.5 ms each.
        drive(&limiter, 3_000, |depth| {
            Duration::from_micros(500 * (depth as u64 + 1))
        });
        let limit = limiter.current();
        assert!((1..=3).contains(&limit), "limit {limit}");
    }

    #[test]
    fn a_remote_with_four_workers_and_a_long_path_gets_what_it_can_use() {
        let limiter = Limiter::new("example.test", 1, 20);
        // Four messages at once are served in 20 ms; deeper ones wait for a worker, plus a path
        // of 30 ms either way: 200 a second at most, reached with about 10 connections.
        drive(&limiter, 5_000, |depth| {
            Duration::from_millis(30 + 20 * (depth as u64 / 4 + 1))
        });
        let limit = limiter.current();
        assert!((4..=12).contains(&limit), "limit {limit}");
    }

    #[test]
    fn equal_bounds_fix_the_limit() {
        let limiter = Limiter::new("example.test", 20, 20);
        drive(&limiter, 1_000, |depth| {
            Duration::from_micros(500 * (depth as u64 + 1))
        });
        assert_eq!(limiter.current(), 20);
    }

    #[tokio::test]
    async fn a_freed_slot_wakes_a_waiting_delivery() {
        let limiter = Arc::new(Limiter::new("example.test", 1, 1));
        let first = limiter.acquire().await;
        let waiting = tokio::spawn({
            let limiter = limiter.clone();
            async move {
                let _second = limiter.acquire().await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the limit is one");
        drop(first);
        waiting.await.expect("the waiting delivery got its slot");
    }

    #[tokio::test]
    async fn a_dot_counts_as_waiting_until_answered_or_lost() {
        let limiter = Arc::new(Limiter::new("example.test", 1, 20));
        let (a, b) = (limiter.acquire().await, limiter.acquire().await);
        let first = a.dot_sent();
        let second = b.dot_sent();
        assert_eq!((first.depth, second.depth), (0, 1));
        first.answered();
        drop(second); // the connection failed before the answer
        assert_eq!(b.dot_sent().depth, 0);
    }
}
