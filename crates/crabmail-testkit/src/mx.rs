//! A remote MX on loopback that records the exact bytes of every DATA it receives (between the
//! 354 and the final dot), so a test can judge the wire itself; held, it answers the final dot
//! only once the test lets it (`release`), so a test can act while a delivery waits for its 250;
//! with one worker, it serves one message at a time, as a small MTA behind a single filter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

pub struct RecordingMx {
    pub port: u16,
    /// Each DATA, in the order received (sent before the 250 goes out).
    pub received: mpsc::UnboundedReceiver<Vec<u8>>,
    /// With one worker: for each message answered, how many final dots waited for the worker
    /// (this one included) when it arrived.
    pub depths: mpsc::UnboundedReceiver<usize>,
    release: watch::Sender<bool>,
}

/// When the final dot is answered.
#[derive(Clone)]
enum Answer {
    /// Once the test releases.
    Held(watch::Receiver<bool>),
    /// When the single worker has finished it (`one_worker`).
    OneWorker {
        worker: mpsc::UnboundedSender<oneshot::Sender<()>>,
        waiting: Arc<AtomicUsize>,
        depths: mpsc::UnboundedSender<usize>,
    },
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
        let (release, released) = watch::channel(false);
        let (_, depths) = mpsc::unbounded_channel();
        Self::listen(ip, Answer::Held(released), release, depths).await
    }

    /// Serves one message at a time, `work` each, on `ip`; `depths` says how many waited.
    pub async fn one_worker(ip: &str, work: Duration) -> RecordingMx {
        let (tx, depths) = mpsc::unbounded_channel();
        let (worker, mut queue) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
        tokio::spawn(async move {
            // The worker's pace: each message, in arrival order, is finished one `work` after
            // the worker takes it up (what the remote does before its 250).
            let mut pace = tokio::time::interval(work);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while let Some(done) = queue.recv().await {
                pace.reset();
                pace.tick().await;
                let _ = done.send(());
            }
        });
        let answer = Answer::OneWorker {
            worker,
            waiting: Arc::new(AtomicUsize::new(0)),
            depths: tx,
        };
        Self::listen(ip, answer, watch::channel(true).0, depths).await
    }

    async fn listen(
        ip: &str,
        answer: Answer,
        release: watch::Sender<bool>,
        depths: mpsc::UnboundedReceiver<usize>,
    ) -> RecordingMx {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(session(tcp, tx.clone(), answer.clone()));
            }
        });
        RecordingMx {
            port,
            received,
            depths,
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
    mut answer: Answer,
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
                match &mut answer {
                    Answer::Held(released) => {
                        if released.wait_for(|go| *go).await.is_err() {
                            return;
                        }
                    }
                    Answer::OneWorker {
                        worker,
                        waiting,
                        depths,
                    } => {
                        let depth = waiting.fetch_add(1, Ordering::SeqCst) + 1;
                        let (done, finished) = oneshot::channel();
                        if worker.send(done).is_err() || finished.await.is_err() {
                            return;
                        }
                        waiting.fetch_sub(1, Ordering::SeqCst);
                        let _ = depths.send(depth);
                    }
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
