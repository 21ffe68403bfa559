//! The server's settings as flags, shared by `serve` and every operator command that opens the
//! server's store.

use anyhow::Context;
use crabmail::config::Config;
use std::path::PathBuf;

#[derive(clap::Args, Clone)]
pub struct ServerOptions {
    /// TOML configuration file (see `crabmail config defaults`).
    #[arg(long, env = "CRABMAIL_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, help = setting_help("data_dir"))]
    data_dir: Option<PathBuf>,
    #[arg(long, help = setting_help("domain"))]
    domain: Option<String>,
    #[arg(long, help = setting_help("api.listen"))]
    api_listen: Option<String>,
    #[arg(long, help = setting_help("mx.listen"))]
    mx_listen: Option<String>,
    #[arg(long, help = setting_help("submission.listen"))]
    submission_listen: Option<String>,
    #[arg(
        long,
        aliases = ["submission-implicit-tls-listen", "implicit-tls-listen"],
        help = setting_help("submission.implicit_tls_listen")
    )]
    submissions_listen: Option<String>,
    #[arg(long, help = setting_help("database_url"))]
    database_url: Option<String>,
    /// Any other setting, as key=value (repeatable), e.g. --set smtp.max_recipients=50; every
    /// setting is also CRABMAIL_<KEY> (dots as _, upper case) and a key of the --config file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// A flag's help from the setting it sets, so the two never disagree: what it does, the
/// setting's name and its default.
fn setting_help(key: &str) -> String {
    match crabmail::config::SETTINGS.iter().find(|s| s.key == key) {
        Some(s) => format!("{} [setting {}; default {}]", s.doc, s.key, s.default),
        None => format!("[setting {key}]"),
    }
}

impl ServerOptions {
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut overrides = Vec::new();
        let flags = [
            (
                "data_dir",
                self.data_dir.as_ref().map(|p| p.display().to_string()),
            ),
            ("domain", self.domain.clone()),
            ("api.listen", self.api_listen.clone()),
            ("mx.listen", self.mx_listen.clone()),
            ("submission.listen", self.submission_listen.clone()),
            (
                "submission.implicit_tls_listen",
                self.submissions_listen.clone(),
            ),
            ("database_url", self.database_url.clone()),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                overrides.push((key.to_owned(), toml_string(&value)));
            }
        }
        for pair in &self.set {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--set {pair}: expected KEY=VALUE"))?;
            overrides.push((key.trim().to_owned(), value.trim().to_owned()));
        }
        Ok(Config::load(
            self.config.as_deref(),
            std::env::vars(),
            &overrides,
        )?)
    }
}

/// Flag values are strings, whatever they look like.
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}
