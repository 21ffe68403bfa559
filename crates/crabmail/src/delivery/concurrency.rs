//! How many deliveries run at once to one destination, between `queue.min_per_destination` and
//! `queue.max_per_destination`, set by how long the remote takes to answer the final dot.
//!
//! That answer is the window in which a crash sends a message twice (RFC 1047): the remote has
//! the message, we have no reply yet. Connections beyond what a destination can serve do not
//! make it faster; they queue our messages at the remote, every one of them inside that window.
//! So the limit grows (one connection per round of deliveries, a round being `limit` answers)
//! while the answer comes about as fast as it does at the floor, and shrinks once it takes more
//! than twice as long: then at least half of the wait is our own mail queued ahead. Between the
//! two, it holds. A remote whose answers are slow but steady (a long path, a content filter)
//! keeps the whole limit; one that queues us gets few connections and loses no throughput.
//!
//! The floor's answer time is learnt from deliveries that started with at most the floor in
//! flight. A remote that became slower for everyone shrinks the limit to the floor, where its new
//! time is learnt and the limit grows again; every `PROBE_EVERY` answers the limit also drops to
//! the floor for a few of them, so a remote that became faster is not judged by an old time
//! (about 1% of a busy destination's throughput). A
//! destination with `min == max` has a fixed limit. State is per node and in memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Answers slower than the floor's by more than this shrink the limit.
const SHRINK_ABOVE: f64 = 2.0;
/// Answers faster than the floor's times this let the limit grow.
const GROW_BELOW: f64 = 1.5;
/// Weight of one answer in the running averages (a few answers make a trend; one does not).
const SMOOTHING: f64 = 0.2;
/// Answers between two measurements of the floor.
const PROBE_EVERY: u32 = 10_000;
/// Answers at the floor that make one measurement.
const PROBE_SAMPLES: u32 = 5;

/// The adaptive limit of one destination. `acquire` waits for a slot.
pub struct Limiter {
    min: usize,
    max: usize,
    state: Mutex<State>,
    freed: Notify,
}

#[derive(Debug, Clone)]
struct State {
    limit: f64,
    in_flight: usize,
    /// Running average of every answer time, in seconds.
    recent: Option<f64>,
    /// Running average of answer times at the floor, in seconds.
    floor: Option<f64>,
    /// Answers since the floor was last measured.
    since_probe: u32,
    /// Floor answers still wanted by the current probe (the limit is the floor until then).
    probing: u32,
}

/// One delivery's slot; dropping it frees the slot. `answered` feeds the limit.
pub struct Slot {
    limiter: Arc<Limiter>,
    at_floor: bool,
}

impl Limiter {
    pub fn new(min: usize, max: usize) -> Limiter {
        let max = max.max(1);
        let min = min.clamp(1, max);
        Limiter {
            min,
            max,
            state: Mutex::new(State {
                limit: min as f64,
                in_flight: 0,
                recent: None,
                floor: None,
                since_probe: 0,
                probing: PROBE_SAMPLES,
            }),
            freed: Notify::new(),
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
            at_floor: state.in_flight <= self.min,
        })
    }

    /// Deliveries allowed at once now.
    pub fn current(&self) -> usize {
        self.allowed(&self.lock())
    }

    fn allowed(&self, state: &State) -> usize {
        if state.probing > 0 {
            return self.min;
        }
        (state.limit as usize).clamp(self.min, self.max)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One answer to a final dot: `at_floor` when no more than the floor's deliveries ran.
    fn observe(&self, state: &mut State, at_floor: bool, wait: Duration) {
        if self.min == self.max {
            return;
        }
        let wait = wait.as_secs_f64();
        let average = |old: Option<f64>| Some(old.map_or(wait, |a| a + SMOOTHING * (wait - a)));
        state.recent = average(state.recent);
        if at_floor {
            state.floor = average(state.floor);
            state.probing = state.probing.saturating_sub(1);
        }
        state.since_probe += 1;
        if state.since_probe >= PROBE_EVERY {
            state.since_probe = 0;
            state.probing = PROBE_SAMPLES;
        }
        let (Some(recent), Some(floor)) = (state.recent, state.floor) else {
            return;
        };
        if state.probing > 0 {
            return;
        }
        let step = 1.0 / state.limit.max(1.0);
        if recent > floor * SHRINK_ABOVE {
            state.limit = (state.limit - step).max(self.min as f64);
        } else if recent < floor * GROW_BELOW {
            state.limit = (state.limit + step).min(self.max as f64);
        }
    }
}

impl Slot {
    /// The remote answered the final dot `wait` after it was sent.
    pub fn answered(&self, wait: Duration) {
        let limiter = &self.limiter;
        let mut state = limiter.lock();
        limiter.observe(&mut state, self.at_floor, wait);
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

    /// Runs `rounds` answers through the limiter, as many deliveries at a time as it allows,
    /// each answered after `wait(deliveries at once)`.
    fn drive(limiter: &Limiter, rounds: usize, mut wait: impl FnMut(usize) -> Duration) {
        for _ in 0..rounds {
            let mut state = limiter.lock();
            let n = limiter.allowed(&state);
            let w = wait(n);
            limiter.observe(&mut state, n <= limiter.min, w);
        }
    }

    #[test]
    fn a_remote_that_keeps_pace_gets_every_connection() {
        let limiter = Limiter::new(1, 20);
        assert_eq!(
            limiter.current(),
            1,
            "a new destination starts at the floor"
        );
        // 40 ms, whatever we send: a long path, nothing queued at the remote.
        drive(&limiter, 400, |_| Duration::from_millis(40));
        assert_eq!(limiter.current(), 20);
    }

    #[test]
    fn noise_alone_does_not_shrink_the_limit() {
        let limiter = Limiter::new(1, 20);
        // Answers spread from 20 to 80 ms at random, independent of how many we send.
        let mut seed = 7u64;
        drive(&limiter, 5_000, move |_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Duration::from_micros(20_000 + (seed >> 33) % 60_000)
        });
        assert!(limiter.current() >= 15, "limit {}", limiter.current());
    }

    #[test]
    fn a_remote_that_queues_us_gets_few_connections() {
        let limiter = Limiter::new(1, 20);
        // One message at a time at the remote: each answer waits for everything sent before it.
        drive(&limiter, 3_000, |n| Duration::from_micros(500 * n as u64));
        let limit = limiter.current();
        assert!((1..=3).contains(&limit), "limit {limit}");
    }

    #[test]
    fn a_remote_that_slows_down_later_is_measured_again() {
        let limiter = Limiter::new(1, 20);
        drive(&limiter, 400, |_| Duration::from_millis(10));
        assert_eq!(limiter.current(), 20);
        // Now four times slower for everyone, still not queueing us: after the next probe the
        // new floor is the norm and the limit stays (or comes back) up.
        drive(&limiter, 3_000, |_| Duration::from_millis(40));
        assert_eq!(limiter.current(), 20);
    }

    #[test]
    fn equal_bounds_fix_the_limit() {
        let limiter = Limiter::new(20, 20);
        drive(&limiter, 1_000, |n| Duration::from_micros(500 * n as u64));
        assert_eq!(limiter.current(), 20);
    }

    #[tokio::test]
    async fn a_freed_slot_wakes_a_waiting_delivery() {
        let limiter = Arc::new(Limiter::new(1, 1));
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
}
