//! A real DNS server on 127.0.0.1 (hickory-server, UDP and TCP on one ephemeral port) serving the
//! test zone `test.`: MX, A, AAAA and TXT records as a test sets them. Point crabmail at it with
//! `dns.nameservers = ["127.0.0.1:PORT"]`; names outside the zone are refused, names inside it
//! without records are NXDOMAIN, as a real authoritative server does.

use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, AAAA, MX, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

const TTL: u32 = 1;

fn name(text: &str) -> Name {
    let fqdn = if text.ends_with('.') {
        text.to_owned()
    } else {
        format!("{text}.")
    };
    Name::from_str(&fqdn).unwrap_or_else(|e| panic!("bad DNS name {text}: {e}"))
}

/// Records to serve, collected before the server starts.
#[derive(Default)]
pub struct Zone {
    records: Vec<Record>,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    pub fn mx(mut self, domain: &str, preference: u16, host: &str) -> Zone {
        self.records.push(Record::from_rdata(
            name(domain),
            TTL,
            RData::MX(MX::new(preference, name(host))),
        ));
        self
    }

    /// RFC 7505: "this domain accepts no mail".
    pub fn null_mx(mut self, domain: &str) -> Zone {
        self.records.push(Record::from_rdata(
            name(domain),
            TTL,
            RData::MX(MX::new(0, Name::root())),
        ));
        self
    }

    pub fn a(mut self, host: &str, ip: &str) -> Zone {
        let record = match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => RData::A(A(v4)),
            Ok(IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
            Err(e) => panic!("bad IP {ip}: {e}"),
        };
        self.records
            .push(Record::from_rdata(name(host), TTL, record));
        self
    }

    /// A TXT record; values over 255 octets are split into strings, as DNS requires.
    pub fn txt(mut self, owner: &str, value: &str) -> Zone {
        let chunks: Vec<String> = value
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        self.records.push(Record::from_rdata(
            name(owner),
            TTL,
            RData::TXT(TXT::new(chunks)),
        ));
        self
    }

    /// Serves the records until the returned server is dropped.
    pub async fn serve(self) -> DnsServer {
        let origin = name("test.");
        let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            name("ns.test."),
            name("hostmaster.test."),
            1,
            3600,
            600,
            86400,
            TTL,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)), 1);
        for record in self.records {
            zone.upsert_mut(record, 1);
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
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
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        DnsServer { addr, task }
    }
}

pub struct DnsServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// The setting that points crabmail at this server.
    pub fn setting(&self) -> (String, String) {
        ("dns.nameservers".into(), format!("[\"{}\"]", self.addr))
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
