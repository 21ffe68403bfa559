//! Connection gates: how many connections are open, in total and per client address, so one
//! client (or everyone at once) cannot use up the process's file descriptors. The SMTP listeners
//! and the HTTP API each have one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Pause after a failed accept (EMFILE and the like), so the loop does not spin on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The next connection on `listener`, or `None` once `shutdown` is cancelled. `who` names the
/// listener in the log.
pub async fn accept(
    listener: &TcpListener,
    who: &str,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return None,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return Some((stream, peer));
            }
            Err(e) => {
                tracing::warn!(error = %e, listener = who, "accept failed");
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}

/// Counts open connections, in total and per client address.
pub struct ConnectionGate {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// An admitted connection; dropping it frees its place.
pub struct Pass {
    gate: Arc<ConnectionGate>,
    ip: IpAddr,
}

impl ConnectionGate {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionGate {
            max_total,
            max_per_ip,
            open: Mutex::new((0, HashMap::new())),
        }
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Pass> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *open;
        let from_ip = per_ip.entry(ip).or_insert(0);
        if *total >= self.max_total || *from_ip >= self.max_per_ip {
            if *from_ip == 0 {
                per_ip.remove(&ip);
            }
            return None;
        }
        *from_ip += 1;
        *total += 1;
        Some(Pass {
            gate: self.clone(),
            ip,
        })
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *open;
        *total -= 1;
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_limits_per_ip_and_in_total() {
        let gate = Arc::new(ConnectionGate::new(3, 2));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert!(gate.admit(a).is_none(), "third from one ip");
        let _b1 = gate.admit(b).unwrap();
        assert!(gate.admit(b).is_none(), "fourth in total");
        drop(a1);
        assert!(gate.admit(b).is_some(), "a freed place is reusable");
    }
}
