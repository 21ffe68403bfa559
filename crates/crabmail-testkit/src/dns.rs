//! A real DNS server on 127.0.0.1 (UDP and TCP on one ephemeral port) answering authoritatively
//! from the records a test sets: A, AAAA, MX, TXT, PTR and CNAME, for any name. Point crabmail at
//! it with `dns.nameservers = ["127.0.0.1:PORT"]`.
//!
//! It speaks the wire protocol through hickory-proto's message codec, so the resolver under test
//! does everything it does against a real server: UDP first, TCP fallback, CNAME chains, NXDOMAIN
//! against NODATA. Two things a zone file cannot do and tests need: a name can be made to time out
//! (no answer at all, as the SPF test suite's `TIMEOUT` requires), and records can be added or
//! removed while the server runs (an operator publishing records mid-test).
//!
//! It is authoritative under `test.` (more origins with `Zone::origin`): a name there without
//! records is NXDOMAIN; a name elsewhere without records is REFUSED, as a real authoritative
//! server answers for zones it does not serve. Every answer has TTL 0, so nothing a resolver
//! caches hides a change.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TTL: u32 = 0;
/// Longest CNAME chain followed in one answer.
const MAX_CHAIN: usize = 8;

fn name(text: &str) -> Name {
    let fqdn = if text.ends_with('.') {
        text.to_owned()
    } else {
        format!("{text}.")
    };
    // Labels of any octets are legal DNS (RFC 2181 11); test data uses them, so take them raw.
    Name::from_str(&fqdn)
        .or_else(|_| {
            let labels = fqdn.trim_end_matches('.').split('.').map(str::as_bytes);
            Name::from_labels(labels).map(|n| n.to_owned())
        })
        .map(|mut n| {
            n.set_fqdn(true);
            n
        })
        .unwrap_or_else(|e| panic!("bad DNS name {text}: {e}"))
}

/// The reverse-lookup name of an address: `4.3.2.1.in-addr.arpa` for 1.2.3.4.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut labels = Vec::with_capacity(34);
            for byte in v6.octets().iter().rev() {
                labels.push(format!("{:x}", byte & 0x0f));
                labels.push(format!("{:x}", byte >> 4));
            }
            format!("{}.ip6.arpa", labels.join("."))
        }
    }
}

struct Records {
    /// Zones we answer for, NXDOMAIN included.
    origins: Vec<LowerName>,
    by_name: HashMap<LowerName, Vec<Record>>,
    /// Names whose queries go unanswered, for every type they have no records of.
    silent: HashSet<LowerName>,
}

impl Default for Records {
    fn default() -> Self {
        Records {
            origins: vec![LowerName::new(&name("test."))],
            by_name: HashMap::new(),
            silent: HashSet::new(),
        }
    }
}

impl Records {
    fn serves(&self, owner: &LowerName) -> bool {
        self.origins.iter().any(|origin| origin.zone_of(owner))
    }

    fn add(&mut self, owner: &str, data: RData) {
        let owner = name(owner);
        self.by_name
            .entry(LowerName::new(&owner))
            .or_default()
            .push(Record::from_rdata(owner, TTL, data));
    }
}

/// Records to serve. Build it, `serve()` it, and keep changing it through the `DnsServer`.
#[derive(Default)]
pub struct Zone {
    records: Records,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Answer authoritatively (NXDOMAIN included) under this name too; `.` for every name.
    pub fn origin(mut self, origin: &str) -> Zone {
        self.records.origins.push(LowerName::new(&name(origin)));
        self
    }

    pub fn mx(mut self, domain: &str, preference: u16, host: &str) -> Zone {
        self.records
            .add(domain, RData::MX(MX::new(preference, name(host))));
        self
    }

    /// RFC 7505: "this domain accepts no mail".
    pub fn null_mx(mut self, domain: &str) -> Zone {
        self.records
            .add(domain, RData::MX(MX::new(0, Name::root())));
        self
    }

    /// An A or AAAA record, whichever the address is.
    pub fn a(mut self, host: &str, ip: &str) -> Zone {
        self.records.add(host, address(ip));
        self
    }

    /// A TXT record; values over 255 octets are split into strings, as DNS requires.
    pub fn txt(mut self, owner: &str, value: &str) -> Zone {
        self.records.add(owner, txt(value));
        self
    }

    /// A TXT record made of exactly these strings (one record, several character-strings).
    pub fn txt_strings(mut self, owner: &str, strings: &[&str]) -> Zone {
        let strings = strings.iter().map(|s| s.to_string()).collect();
        self.records.add(owner, RData::TXT(TXT::new(strings)));
        self
    }

    /// A TXT record of raw character-strings: octets that need not be UTF-8.
    pub fn txt_bytes(mut self, owner: &str, strings: &[Vec<u8>]) -> Zone {
        let strings: Vec<&[u8]> = strings.iter().map(|s| s.as_slice()).collect();
        self.records
            .add(owner, RData::TXT(TXT::from_bytes(strings)));
        self
    }

    /// A PTR record at `owner` (use `reverse_name` for an address).
    pub fn ptr(mut self, owner: &str, target: &str) -> Zone {
        self.records.add(owner, RData::PTR(PTR(name(target))));
        self
    }

    pub fn cname(mut self, alias: &str, target: &str) -> Zone {
        self.records.add(alias, RData::CNAME(CNAME(name(target))));
        self
    }

    /// The name exists but has no records of any type asked for (NODATA, not NXDOMAIN).
    pub fn exists(mut self, owner: &str) -> Zone {
        self.records
            .by_name
            .entry(LowerName::new(&name(owner)))
            .or_default();
        self
    }

    /// Queries for `owner` go unanswered, as a dead authoritative server would: every query,
    /// or with records at the name, queries for the types it has none of.
    pub fn timeout(mut self, owner: &str) -> Zone {
        self.records.silent.insert(LowerName::new(&name(owner)));
        self
    }

    /// Serves on a chosen address, such as 127.0.0.13:53 for programs that only read
    /// /etc/resolv.conf (which cannot name a port).
    pub async fn serve_on(self, addr: SocketAddr) -> DnsServer {
        let udp = tokio::net::UdpSocket::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind DNS/UDP {addr}: {e}"));
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind DNS/TCP {addr}: {e}"));
        self.serve_sockets(udp, tcp, addr)
    }

    /// Serves the records until the returned server is dropped.
    pub async fn serve(self) -> DnsServer {
        // UDP and TCP on one port: the port the OS picks for UDP may be taken for TCP; pick again.
        let (udp, tcp, addr) = 'bound: {
            for _ in 0..50 {
                let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("bind DNS/UDP");
                let addr = udp.local_addr().expect("DNS address");
                if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
                    break 'bound (udp, tcp, addr);
                }
            }
            panic!("no port free for DNS on both UDP and TCP");
        };
        self.serve_sockets(udp, tcp, addr)
    }

    fn serve_sockets(
        self,
        udp: tokio::net::UdpSocket,
        tcp: tokio::net::TcpListener,
        addr: SocketAddr,
    ) -> DnsServer {
        let records = Arc::new(RwLock::new(self.records));
        let udp_task = tokio::spawn(serve_udp(udp, records.clone()));
        let tcp_task = tokio::spawn(serve_tcp(tcp, records.clone()));
        DnsServer {
            addr,
            records,
            tasks: vec![udp_task, tcp_task],
        }
    }
}

fn address(ip: &str) -> RData {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => RData::A(A(v4)),
        Ok(IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
        Err(e) => panic!("bad IP {ip}: {e}"),
    }
}

fn txt(value: &str) -> RData {
    let chunks: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    RData::TXT(TXT::new(chunks))
}

pub struct DnsServer {
    pub addr: SocketAddr,
    records: Arc<RwLock<Records>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DnsServer {
    /// The setting that points crabmail at this server.
    pub fn setting(&self) -> (String, String) {
        ("dns.nameservers".into(), format!("[\"{}\"]", self.addr))
    }

    /// Publishes a TXT record now.
    pub fn add_txt(&self, owner: &str, value: &str) {
        self.write().add(owner, txt(value));
    }

    pub fn add_mx(&self, domain: &str, preference: u16, host: &str) {
        self.write()
            .add(domain, RData::MX(MX::new(preference, name(host))));
    }

    pub fn add_a(&self, host: &str, ip: &str) {
        self.write().add(host, address(ip));
    }

    pub fn add_cname(&self, alias: &str, target: &str) {
        self.write().add(alias, RData::CNAME(CNAME(name(target))));
    }

    /// Withdraws every record at `owner`.
    pub fn remove(&self, owner: &str) {
        self.write().by_name.remove(&LowerName::new(&name(owner)));
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Records> {
        self.records.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn serve_udp(socket: tokio::net::UdpSocket, records: Arc<RwLock<Records>>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&records, &buf[..len], 512) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener, records: Arc<RwLock<Records>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let records = records.clone();
        tokio::spawn(async move {
            loop {
                let Ok(len) = stream.read_u16().await else {
                    return;
                };
                let mut query = vec![0u8; usize::from(len)];
                if stream.read_exact(&mut query).await.is_err() {
                    return;
                }
                let Some(reply) = answer(&records, &query, usize::from(u16::MAX)) else {
                    // A silent name: hold the connection open and answer nothing.
                    continue;
                };
                let Ok(reply_len) = u16::try_from(reply.len()) else {
                    return;
                };
                if stream.write_u16(reply_len).await.is_err()
                    || stream.write_all(&reply).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

/// The encoded reply to one query, or None to stay silent. Replies over `limit` octets are sent
/// truncated so the client retries over TCP.
fn answer(records: &RwLock<Records>, query: &[u8], limit: usize) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    if let Some(edns) = request.edns.clone() {
        reply.set_edns(edns);
    }
    let Some(question) = request.queries.first().cloned() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply.to_vec().ok();
    };
    reply.add_query(question.clone());
    let records = records.read().unwrap_or_else(|e| e.into_inner());
    let mut owner = LowerName::new(question.name());
    let mut found_name = false;
    for _ in 0..MAX_CHAIN {
        let at_owner = records.by_name.get(&owner);
        if records.silent.contains(&owner)
            && !at_owner.is_some_and(|list| {
                list.iter().any(|r| {
                    r.record_type() == question.query_type() || r.record_type() == RecordType::CNAME
                })
            })
        {
            return None;
        }
        let Some(at_owner) = at_owner else {
            break;
        };
        found_name = true;
        let alias = at_owner
            .iter()
            .find(|r| r.record_type() == RecordType::CNAME)
            .filter(|_| question.query_type() != RecordType::CNAME);
        if let Some(alias) = alias {
            reply.add_answer(alias.clone());
            let RData::CNAME(CNAME(target)) = &alias.data else {
                break;
            };
            owner = LowerName::new(target);
            found_name = false;
            continue;
        }
        reply.add_answers(
            at_owner
                .iter()
                .filter(|r| {
                    question.query_type() == RecordType::ANY
                        || r.record_type() == question.query_type()
                })
                .cloned(),
        );
        break;
    }
    if !found_name && reply.answers.is_empty() {
        if !records.serves(&owner) {
            reply.metadata.response_code = ResponseCode::Refused;
            return reply.to_vec().ok();
        }
        reply.metadata.response_code = ResponseCode::NXDomain;
    }
    if reply.answers.is_empty() || !found_name {
        // The SOA tells the resolver how long it may remember "no": not at all.
        let soa = SOA::new(
            name("ns.test."),
            name("hostmaster.test."),
            1,
            3600,
            600,
            86400,
            0,
        );
        reply.add_authority(Record::from_rdata(Name::root(), 0, RData::SOA(soa)));
    }
    let encoded = reply.to_vec().ok()?;
    if encoded.len() > limit {
        let mut truncated = reply.truncate();
        truncated.metadata.response_code = reply.metadata.response_code;
        return truncated.to_vec().ok();
    }
    Some(encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.3".parse().unwrap()),
            "3.2.0.192.in-addr.arpa"
        );
        assert!(
            reverse_name("2001:db8::1".parse().unwrap())
                .starts_with("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2")
        );
    }
}
