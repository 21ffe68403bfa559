//! Test mode: `simulator.crabmail.test`, a domain whose recipients produce each delivery outcome
//! without any network, so agents and CI can exercise every path deterministically.
//!
//! The local part picks the outcome (a `+tag` is ignored, so each run can use fresh addresses:
//! a bounce suppresses its address like any real one):
//!
//! | address | outcome |
//! |---|---|
//! | `delivered@` | 250, delivered |
//! | `bounce@` | 550 5.1.1 user unknown: bounced, a bounce report, the address suppressed |
//! | `defer@` | 451 4.4.1 on the first attempt, delivered on the retry |
//! | `slow@` | delivered after 30 s (on the server's clock) |
//! | `complaint@` | delivered, then reported as spam: the address is suppressed |
//! | `reject@` | 550 5.7.1 refused for policy: bounced, not suppressed |
//!
//! Any other local part is 550 5.1.1, naming the ones that exist.

use super::outcome::Outcome;
use crate::clock::Clock;
use std::time::Duration;

/// The reserved domain (`.test` is never delegated, RFC 2606).
pub const DOMAIN: &str = "simulator.crabmail.test";
/// How long `slow@` takes to answer.
pub const SLOW: Duration = Duration::from_secs(30);
/// The host name outcomes are attributed to.
const HOST: &str = "simulator.crabmail.test";

/// What a simulator address does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Delivered,
    Bounce,
    Defer,
    Slow,
    Complaint,
    Reject,
    Unknown,
}

impl Behaviour {
    pub fn of(address: &str) -> Behaviour {
        let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
        let base = local.split('+').next().unwrap_or(local);
        match base.to_ascii_lowercase().as_str() {
            "delivered" => Behaviour::Delivered,
            "bounce" => Behaviour::Bounce,
            "defer" => Behaviour::Defer,
            "slow" => Behaviour::Slow,
            "complaint" => Behaviour::Complaint,
            "reject" => Behaviour::Reject,
            _ => Behaviour::Unknown,
        }
    }

    /// The answer to an attempt, given how many attempts came before it.
    pub fn answer(self, earlier_attempts: u32) -> Outcome {
        let (code, text) = match self {
            Behaviour::Delivered | Behaviour::Slow => (250, "2.0.0 delivered (simulated)"),
            Behaviour::Complaint => (
                250,
                "2.0.0 delivered (simulated); the recipient will report it as spam",
            ),
            Behaviour::Defer if earlier_attempts == 0 => {
                (451, "4.4.1 temporarily unavailable (simulated); retry")
            }
            Behaviour::Defer => (250, "2.0.0 delivered on retry (simulated)"),
            Behaviour::Bounce => (550, "5.1.1 user unknown (simulated)"),
            Behaviour::Reject => (550, "5.7.1 message refused for policy (simulated)"),
            Behaviour::Unknown => (
                550,
                "5.1.1 no such simulator address; use delivered, bounce, defer, slow, complaint or reject",
            ),
        };
        Outcome::from_reply(code, text, HOST, None)
    }
}

/// Whether `domain` is the simulator's.
pub fn is_simulator(domain: &str) -> bool {
    domain.eq_ignore_ascii_case(DOMAIN)
}

/// One attempt for each recipient (`(address, earlier attempts)`), in order; `slow@` makes the
/// whole attempt wait `SLOW` on `clock` first, as a slow server would.
pub async fn deliver(clock: &dyn Clock, recipients: &[(String, u32)]) -> Vec<Outcome> {
    if recipients
        .iter()
        .any(|(address, _)| Behaviour::of(address) == Behaviour::Slow)
    {
        clock.sleep_until(clock.now().plus(SLOW)).await;
    }
    recipients
        .iter()
        .map(|(address, attempts)| Behaviour::of(address).answer(*attempts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::outcome::Verdict;

    #[test]
    fn each_address_answers_as_documented() {
        let verdict = |a: &str, n: u32| Behaviour::of(a).answer(n).verdict;
        assert_eq!(
            verdict("delivered@simulator.crabmail.test", 0),
            Verdict::Delivered
        );
        assert_eq!(
            verdict("Bounce+run7@simulator.crabmail.test", 0),
            Verdict::Bounced
        );
        assert!(Behaviour::of("bounce@x").answer(0).is_bad_mailbox());
        assert!(!Behaviour::of("reject@x").answer(0).is_bad_mailbox());
        assert_eq!(verdict("defer@x", 0), Verdict::Deferred);
        assert_eq!(verdict("defer@x", 1), Verdict::Delivered);
        assert_eq!(verdict("complaint@x", 0), Verdict::Delivered);
        assert_eq!(verdict("nobody@x", 0), Verdict::Bounced);
        assert_eq!(Behaviour::of("reject@x").answer(0).code, Some(550));
    }
}
