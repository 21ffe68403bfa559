//! Helpers the trust tests share: dkimpy (PyPI) as an independent DKIM signer and verifier.
#![allow(dead_code)] // each test binary uses its own subset

use crabmail_testkit::DnsServer;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

pub fn dkimpy_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dkim/dkimpy.py")
}

pub async fn run(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).await.expect("write stdin");
    drop(stdin);
    child.wait_with_output().await.expect("wait")
}

/// dkimpy's verdict on each DKIM-Signature of `message`, in order.
pub async fn dkimpy_verify(dns: &DnsServer, message: &[u8]) -> Vec<bool> {
    let out = run(
        Command::new("python3").args([
            dkimpy_script().to_str().unwrap(),
            "verify",
            &dns.addr.ip().to_string(),
            &dns.addr.port().to_string(),
        ]),
        message,
    )
    .await;
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("dkimpy verdicts")
}

/// A key from dkimpy's `dknewkey`: the private key file and the TXT value to publish.
pub fn new_key(dir: &Path, name: &str, kind: &str) -> (PathBuf, String) {
    let out = std::process::Command::new("dknewkey")
        .args(["--ktype", kind, name])
        .current_dir(dir)
        .output()
        .expect("dknewkey (pip install dkimpy)");
    assert!(out.status.success(), "{out:?}");
    let txt = std::fs::read_to_string(dir.join(format!("{name}.dns"))).unwrap();
    (dir.join(format!("{name}.key")), txt.trim().to_owned())
}

pub async fn dkimpy_sign(
    message: &[u8],
    selector: &str,
    domain: &str,
    key: &Path,
    kind: &str,
) -> Vec<u8> {
    let out = run(
        Command::new("python3").args([
            dkimpy_script().to_str().unwrap(),
            "sign",
            selector,
            domain,
            key.to_str().unwrap(),
            kind,
        ]),
        message,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn replace_once(message: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(message.to_vec()).unwrap();
    assert!(text.contains(from), "{from} not in message");
    text.replacen(from, to, 1).into_bytes()
}
