//! How many deliveries run at once to one destination, between `queue.min_per_destination` and
//! `queue.max_per_destination`, set by whether our own mail queues at the remote.
//!
//! The remote's answer to the final dot is the window in which a crash sends a message twice
//! (RFC 1047): the remote has the message, we have no reply yet. Connections beyond what a
//! destination serves at once do not make it faster; they queue our messages there, each inside
//! that window. Each dot is sent knowing how many of ours already wait at that destination (its
//! depth). Answers to dots sent at depth 0 give the remote's own time (the floor: the median of
//! the last few, so one slow answer does not move it); the running average of all answers, set
//! against it, says how much of an answer is spent behind our own mail: over half (answers take
//! more than twice the floor), and the limit shrinks by one connection per round of deliveries
//! (a round being `limit` answers); under a quarter, it grows by one; between, it holds. A remote
//! that serves us in parallel answers as fast at any depth, so slow or noisy answers alone (a
//! long path, a content filter) keep the whole limit; one that serves us one at a time settles at
//! about two.
//!
//! A destination starts at `START` (Postfix's initial destination concurrency). Once it answers,
//! it goes one delivery at a time (the lower bound) until the floor has `LEARN` depth-0 answers;
//! at a low limit they come by themselves. While it keeps answering but `PROBE_AFTER` passes
//! without a depth-0 answer, the limit drops to the lower bound until one comes, so a remote that
//! became faster is not judged by an old time (BBR's ProbeRTT does the same for a TCP path). A
//! destination that does not answer at all (down, or refusing before DATA) is never held to one
//! at a time: its deliveries fail at their own pace. `min == max` fixes the limit. State is per
//! node and in memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Connections a destination starts with once its floor is known (within the bounds).
const START: usize = 5;
/// Share of the answer time spent behind our own mail above which the limit shrinks.
const SHRINK_ABOVE: f64 = 0.5;
/// Share below which it grows.
const GROW_BELOW: f64 = 0.25;
/// Weight of one answer in the running average once it is warm (about the last 40 count).
const SMOOTHING: f64 = 0.05;
/// Depth-0 answers kept for the floor's median.
const FLOOR_ANSWERS: usize = 5;
/// Depth-0 answers wanted before the limit leaves the lower bound.
const LEARN: usize = FLOOR_ANSWERS;
/// Time without a depth-0 answer after which the floor is measured again (and without any
/// answer after which the destination counts as not answering).
const PROBE_AFTER: Duration = Duration::from_secs(10);

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

#[derive(Debug, Clone)]
struct State {
    limit: f64,
    in_flight: usize,
    /// Running average of every answer time, in seconds, and how many answers it has seen.
    recent: f64,
    answers: u32,
    answered_at: Option<Instant>,
    /// The last depth-0 answer times (seconds), oldest first, and when the last one came.
    floor: Vec<f64>,
    floor_at: Option<Instant>,
}

impl State {
    /// The median of the kept depth-0 answers (none kept: 0).
    fn floor(&self) -> f64 {
        let mut sorted = [0.0; FLOOR_ANSWERS];
        let kept = &mut sorted[..self.floor.len()];
        kept.copy_from_slice(&self.floor);
        kept.sort_by(f64::total_cmp);
        kept.get(kept.len() / 2).copied().unwrap_or(0.0)
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
    sent: Instant,
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
                in_flight: 0,
                recent: 0.0,
                answers: 0,
                answered_at: None,
                floor: Vec::with_capacity(FLOOR_ANSWERS),
                floor_at: None,
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
        if state.in_flight >= self.allowed(&state, Instant::now()) {
            return None;
        }
        state.in_flight += 1;
        Some(Slot {
            limiter: self.clone(),
        })
    }

    fn allowed(&self, state: &State, now: Instant) -> usize {
        if self.min == self.max {
            return self.max;
        }
        let within = |at: Option<Instant>| {
            at.is_some_and(|at| now.saturating_duration_since(at) <= PROBE_AFTER)
        };
        let floor_known = state.floor.len() >= LEARN && within(state.floor_at);
        if within(state.answered_at) && !floor_known {
            return self.min;
        }
        (state.limit as usize).clamp(self.min, self.max)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One answer, `wait` after its dot was sent with `depth` of ours already waiting there.
    fn observe(&self, state: &mut State, depth: usize, wait: Duration, now: Instant) {
        if self.min == self.max {
            return;
        }
        let wait = wait.as_secs_f64();
        state.answers = state.answers.saturating_add(1);
        let weight = (1.0 / f64::from(state.answers)).max(SMOOTHING);
        state.recent += weight * (wait - state.recent);
        state.answered_at = Some(now);
        if depth == 0 {
            if state.floor.len() == FLOOR_ANSWERS {
                state.floor.remove(0);
            }
            state.floor.push(wait);
            state.floor_at = Some(now);
        }
        if state.floor.len() < LEARN || state.recent <= 0.0 {
            return;
        }
        let queued_share = 1.0 - state.floor() / state.recent;
        let step = 1.0 / state.limit.max(1.0);
        if queued_share > SHRINK_ABOVE {
            state.limit = (state.limit - step).max(self.min as f64);
        } else if queued_share < GROW_BELOW {
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
            sent: Instant::now(),
        }
    }
}

impl Dot<'_> {
    /// The remote answered the dot.
    pub fn answered(self) {
        let limiter = self.limiter;
        let now = Instant::now();
        let wait = now.saturating_duration_since(self.sent);
        let mut state = limiter.lock();
        let before = limiter.allowed(&state, now);
        limiter.observe(&mut state, self.depth, wait, now);
        let after = limiter.allowed(&state, now);
        if after != before {
            tracing::debug!(destination = %limiter.name, connections = after, answer_ms = wait.as_secs_f64() * 1e3, "delivery: concurrency changed");
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

    /// A limiter on a test clock.
    struct Run {
        limiter: Limiter,
        clock: Instant,
    }

    impl Run {
        fn new(min: usize, max: usize) -> Run {
            Run {
                limiter: Limiter::new("example.test", min, max),
                clock: Instant::now(),
            }
        }

        /// `rounds` answers, one a millisecond, with as many deliveries at once as the limiter
        /// allows: `remote(n)` gives the depth and answer time of a dot sent with `n` at once
        /// (1 while the floor is learnt: a dot alone). Returns the limit after them.
        fn answers(
            &mut self,
            rounds: usize,
            mut remote: impl FnMut(usize) -> (usize, Duration),
        ) -> usize {
            for _ in 0..rounds {
                self.clock += Duration::from_millis(1);
                let mut state = self.limiter.lock();
                let n = self.limiter.allowed(&state, self.clock);
                let (depth, wait) = remote(n);
                self.limiter.observe(&mut state, depth, wait, self.clock);
            }
            self.limit()
        }

        fn limit(&self) -> usize {
            self.limiter.allowed(&self.limiter.lock(), self.clock)
        }
    }

    /// A remote that serves `workers` of our messages at once in `work_ms` each, `path_ms` away:
    /// with `n` at once, a dot finds the other `n - 1` ahead of it.
    fn workers(
        workers: usize,
        work_ms: f64,
        path_ms: u64,
    ) -> impl FnMut(usize) -> (usize, Duration) {
        move |n| {
            let depth = n - 1;
            let turns = (depth / workers + 1) as f64;
            let wait =
                Duration::from_millis(path_ms) + Duration::from_secs_f64(work_ms * turns / 1e3);
            (depth, wait)
        }
    }

    #[test]
    fn a_remote_that_serves_us_in_parallel_gets_every_connection() {
        let mut run = Run::new(1, 20);
        assert_eq!(run.limit(), START);
        assert_eq!(
            run.answers(1, workers(100, 20.0, 30)),
            1,
            "the floor is learnt"
        );
        assert_eq!(run.answers(LEARN, workers(100, 20.0, 30)), START);
        assert_eq!(run.answers(400, workers(100, 20.0, 30)), 20);
    }

    #[test]
    fn a_destination_that_never_answers_keeps_its_start() {
        let mut run = Run::new(1, 20);
        run.clock += PROBE_AFTER * 3;
        assert_eq!(
            run.limit(),
            START,
            "nothing answers: no floor to learn, no probe"
        );
    }

    #[test]
    fn slow_noisy_answers_alone_do_not_shrink_the_limit() {
        // Answers spread from 20 to 180 ms at random, whatever the depth; one dot in 50 finds
        // none of ours waiting.
        let mut seed = 7u64;
        let mut i = 0;
        let limit = Run::new(1, 20).answers(20_000, move |n| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            i += 1;
            let depth = if i % 50 == 0 { 0 } else { n - 1 };
            (
                depth,
                Duration::from_micros(20_000 + (seed >> 33) % 160_000),
            )
        });
        assert!(limit >= 15, "limit {limit}");
    }

    #[test]
    fn a_remote_that_serves_us_one_at_a_time_gets_few_connections() {
        let limit = Run::new(1, 20).answers(3_000, workers(1, 0.5, 0));
        assert!((1..=2).contains(&limit), "limit {limit}");
    }

    #[test]
    fn one_slow_answer_alone_does_not_hide_the_queue() {
        // The first dot alone waits 30 ms (a pause at our end); the remote needs 0.5 ms.
        let mut first = true;
        let mut serial = workers(1, 0.5, 0);
        let limit = Run::new(1, 20).answers(3_000, move |n| {
            let (depth, wait) = serial(n);
            let slow = std::mem::take(&mut first);
            (
                depth,
                if slow {
                    Duration::from_millis(30)
                } else {
                    wait
                },
            )
        });
        assert!((1..=2).contains(&limit), "limit {limit}");
    }

    #[test]
    fn a_remote_with_four_workers_gets_at_least_four() {
        let limit = Run::new(1, 20).answers(5_000, workers(4, 20.0, 30));
        assert!((4..=10).contains(&limit), "limit {limit}");
    }

    #[test]
    fn a_remote_that_slows_down_for_everyone_keeps_the_limit() {
        let mut run = Run::new(1, 20);
        assert_eq!(run.answers(400, workers(100, 10.0, 0)), 20);
        // Four times slower, still in parallel: the old floor first reads as queueing, the limit
        // falls until dots go out alone, and the new floor brings it back.
        assert_eq!(run.answers(3_000, workers(100, 40.0, 0)), 20);
    }

    #[test]
    fn the_floor_is_measured_again_after_a_while_without_it() {
        let mut run = Run::new(1, 20);
        assert_eq!(run.answers(400, workers(100, 40.0, 0)), 20);
        // Answers keep coming, none to a dot sent alone.
        let busy = |_| (19, Duration::from_millis(40));
        run.answers(10_000, busy);
        assert_eq!(
            run.answers(1, busy),
            1,
            "one at a time until a dot goes out alone"
        );
        assert_eq!(run.answers(1, workers(100, 40.0, 0)), 20);
    }

    #[test]
    fn equal_bounds_fix_the_limit() {
        assert_eq!(Run::new(20, 20).answers(1_000, workers(1, 0.5, 0)), 20);
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
        let limiter = Arc::new(Limiter::new("example.test", 20, 20));
        let (a, b) = (limiter.acquire().await, limiter.acquire().await);
        let first = a.dot_sent();
        let second = b.dot_sent();
        assert_eq!((first.depth, second.depth), (0, 1));
        first.answered();
        drop(second); // the connection failed before the answer
        assert_eq!(b.dot_sent().depth, 0);
    }
}
