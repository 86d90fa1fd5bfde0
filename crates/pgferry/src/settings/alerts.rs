//! The `[alerts]` section, the same on both sides.

use serde::Deserialize;

use super::values::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    /// Name of the environment variable that holds the SMTP password.
    #[serde(default)]
    pub password_env: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    /// How long a job that keeps failing stays quiet before it alerts again (default 6h).
    #[serde(default)]
    pub repeat_after: Option<Duration>,
}

impl AlertSettings {
    pub fn repeat_after(&self) -> std::time::Duration {
        self.repeat_after
            .map(Duration::as_std)
            .unwrap_or(std::time::Duration::from_secs(6 * 3600))
    }
}
