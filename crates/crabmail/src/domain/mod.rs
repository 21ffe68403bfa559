//! Hosted domains: claiming, verifying, keys, and their DNS: the records a domain must publish for crabmail to receive, sign
//! and be trusted for it (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT), and a live check of each.
//!
//! A custom domain is verified when its MX points at us and its DKIM key is published: the key is
//! unique to the claim, so publishing it proves control of the zone. SPF, DMARC, MTA-STS and
//! TLS-RPT are reported too, as recommendations.
//!
//! `records` says what a domain must publish and checks it; `Domains` is the service the API, the
//! server and the operator commands share to claim, verify, rotate keys and set up the shared
//! domain.

mod records;
mod service;

pub use records::*;
pub use service::*;
