//! A remote MX on loopback that records the exact bytes of every DATA it receives (between the
//! 354 and the final dot), so a test can judge the wire itself; held, it answers the final dot
//! only once the test lets it (`release`), so a test can act while a delivery waits for its 250.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

pub struct RecordingMx {
    pub port: u16,
    /// Each DATA, in the order received (sent before the 250 goes out).
    pub received: mpsc::UnboundedReceiver<Vec<u8>>,
    release: watch::Sender<bool>,
}

impl RecordingMx {
    /// Answers every command at once, on `ip`.
    pub async fn start(ip: &str) -> RecordingMx {
        let mx = RecordingMx::holding(ip).await;
        mx.release();
        mx
    }

    /// Holds every answer to a final dot until `release`, on `ip`.
    pub async fn holding(ip: &str) -> RecordingMx {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, received) = mpsc::unbounded_channel();
        let (release, released) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(session(tcp, tx.clone(), released.clone()));
            }
        });
        RecordingMx {
            port,
            received,
            release,
        }
    }

    /// Lets every held and later 250 go out.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }
}

async fn session(
    tcp: tokio::net::TcpStream,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    mut released: watch::Receiver<bool>,
) {
    let (read, mut write) = tcp.into_split();
    let mut read = BufReader::new(read);
    let _ = write.write_all(b"220 recorder.test ESMTP\r\n").await;
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 recorder.test\r\n",
            "DATA" => {
                let _ = write.write_all(b"354 go\r\n").await;
                let mut data = Vec::new();
                let mut byte = [0u8; 1];
                while !data.ends_with(b"\r\n.\r\n") {
                    if read.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    data.push(byte[0]);
                }
                let _ = tx.send(data);
                if released.wait_for(|go| *go).await.is_err() {
                    return;
                }
                b"250 2.0.0 kept\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 ok\r\n",
        };
        let _ = write.write_all(reply).await;
    }
}
