//! Postfix's `smtp-sink` as the remote MX (Debian package `postfix`): a real SMTP server that
//! accepts, or refuses with chosen replies, and dumps every transaction it accepts to a file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct SmtpSink {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    counters: tempfile::NamedTempFile,
    /// Sessions that ended before the test began (the readiness probe).
    baseline: usize,
    child: Child,
}

/// One transaction as smtp-sink dumped it.
#[derive(Debug, Clone)]
pub struct Dumped {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message as received (smtp-sink's own X-* lines removed).
    pub message: String,
}

impl SmtpSink {
    /// Starts `smtp-sink` on `addr` with extra `options` (e.g. `["-r", "RCPT"]` to answer 4xx to
    /// every RCPT, `["-f", "RCPT", "-B", "550 5.1.1 no such user"]` for a chosen 5xx).
    pub async fn start(addr: SocketAddr, options: &[&str]) -> SmtpSink {
        let dir = tempfile::tempdir().expect("sink dir");
        make_world_writable(dir.path());
        let template = format!("{}/m.", dir.path().display());
        let counters = tempfile::NamedTempFile::new().expect("counter file");
        let child = Command::new("smtp-sink")
            .args(["-c", "-u", "nobody", "-d", &template])
            .args(options)
            .arg(addr.to_string())
            .arg("64")
            .stdout(counters.reopen().expect("counter file"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("smtp-sink must be installed (apt-get install postfix)");
        let mut sink = SmtpSink {
            addr,
            dir,
            counters,
            baseline: 0,
            child,
        };
        sink.wait_listening().await;
        sink.baseline = sink.raw_sessions_ended();
        sink
    }

    /// smtp-sink is another process: wait (bounded) until it accepts connections. The probe ends
    /// its session with QUIT and waits for the close, so the sink has counted it when this returns.
    async fn wait_listening(&self) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for _ in 0..500 {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(self.addr).await {
                let mut buf = [0u8; 512];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(b"QUIT\r\n").await;
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("smtp-sink did not start listening on {}", self.addr);
    }

    /// How many SMTP sessions of the test have ended so far (smtp-sink's `-c` counter).
    pub fn sessions_ended(&self) -> usize {
        self.raw_sessions_ended().saturating_sub(self.baseline)
    }

    fn raw_sessions_ended(&self) -> usize {
        let text = std::fs::read_to_string(self.counters.path()).unwrap_or_default();
        text.rsplit(['\n', '\r'])
            .find_map(|line| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix("sess="))
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Every transaction dumped so far.
    pub fn received(&self) -> Vec<Dumped> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .map(|text| parse_dump(&text))
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn make_world_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777));
}

fn parse_dump(text: &str) -> Dumped {
    let mut dumped = Dumped {
        mail_from: String::new(),
        rcpt_to: Vec::new(),
        message: String::new(),
    };
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.peek() {
        let Some(rest) = line.strip_prefix("X-") else {
            break;
        };
        let value = rest
            .split_once(": ")
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        if rest.starts_with("Mail-Args:") {
            dumped.mail_from = value
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_start_matches("FROM:")
                .trim_matches(['<', '>'])
                .to_owned();
        } else if rest.starts_with("Rcpt-Args:") {
            dumped.rcpt_to.push(
                value
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("TO:")
                    .trim_matches(['<', '>'])
                    .to_owned(),
            );
        }
        lines.next();
    }
    dumped.message = lines.collect();
    dumped
}
