//! Alert emails over SMTP (lettre): what a FAILED and a RECOVERED email say, and sending
//! them. Sending is best effort for the caller: an SMTP failure is returned, never hidden,
//! but it must never change a job's own result (guarantee 9).

use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};

use crate::cause::Cause;
use crate::settings::alerts::{AlertSettings, SmtpSecurity};

/// How long one SMTP conversation may take, so a dead mail server never hangs a job.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// One email to the admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub body: String,
}

/// This machine's name, as alerts show it.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// The email for a job that failed.
pub fn failed(
    job: &str,
    host: &str,
    now: DateTime<Utc>,
    err: &anyhow::Error,
    failures: u32,
    repeat_after: &str,
    log: &[String],
) -> Email {
    let causes: Vec<String> = err.chain().map(|c| format!("  {c}")).collect();
    let log = if log.is_empty() {
        "  (none)".to_string()
    } else {
        log.iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Email {
        subject: format!("[pgferry] FAILED: {job} on {host}"),
        body: format!(
            "The pgferry job {job} failed on {host} at {time}.\n\n\
             Error, with its causes:\n{causes}\n\n\
             What to check:\n  {hint}\n\n\
             This job has failed {failures} time(s) in a row. While it keeps failing, no other email is sent for {repeat_after}; its recovery sends one.\n\n\
             Last log lines of the run:\n{log}\n",
            time = now.to_rfc3339(),
            causes = causes.join("\n"),
            hint = hint(err),
        ),
    }
}

/// The email for a job that succeeded after alerted failures.
pub fn recovered(job: &str, host: &str, now: DateTime<Utc>, failures: u32) -> Email {
    Email {
        subject: format!("[pgferry] RECOVERED: {job} on {host}"),
        body: format!(
            "The pgferry job {job} succeeded on {host} at {} after {failures} failed run(s).\nNothing else to do.\n",
            now.to_rfc3339()
        ),
    }
}

/// What an operator should look at first, from the failure's cause.
fn hint(err: &anyhow::Error) -> &'static str {
    Cause::of(err).map_or(
        "the log lines below, then run `check` on this side.",
        Cause::check,
    )
}

/// Sends `email` to `alerts.to`.
pub fn send(settings: &AlertSettings, email: &Email) -> anyhow::Result<()> {
    let server = format!("{}:{}", settings.smtp_host, settings.smtp_port);
    let message = build(settings, email)?;
    let transport = transport(settings)?;
    transport.send(&message).with_context(|| {
        format!(
            "send the alert {:?} through SMTP server {server}",
            email.subject
        )
    })?;
    Ok(())
}

fn build(settings: &AlertSettings, email: &Email) -> anyhow::Result<Message> {
    let from: Mailbox = settings
        .from
        .parse()
        .with_context(|| format!("alerts.from {:?} is not an email address", settings.from))?;
    let mut builder = Message::builder().from(from).subject(&email.subject);
    for to in &settings.to {
        let to: Mailbox = to
            .parse()
            .with_context(|| format!("alerts.to {to:?} is not an email address"))?;
        builder = builder.to(to);
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(email.body.clone())
        .context("build the alert email")
}

fn transport(settings: &AlertSettings) -> anyhow::Result<SmtpTransport> {
    let host = settings.smtp_host.as_str();
    let builder = match settings.security {
        SmtpSecurity::None => SmtpTransport::builder_dangerous(host),
        SmtpSecurity::Starttls => SmtpTransport::starttls_relay(host)
            .with_context(|| format!("set up STARTTLS to {host}"))?,
        SmtpSecurity::Tls => {
            SmtpTransport::relay(host).with_context(|| format!("set up TLS to {host}"))?
        }
    };
    let mut builder = builder.port(settings.smtp_port).timeout(Some(SMTP_TIMEOUT));
    if let Some(username) = &settings.username {
        let Some(var) = &settings.password_env else {
            bail!("alerts.username is set but alerts.password_env is not; hint: name the environment variable that holds the SMTP password");
        };
        let password = std::env::var(var).with_context(|| {
            format!("the SMTP password variable {var} (alerts.password_env) is not set")
        })?;
        builder = builder.credentials(Credentials::new(username.clone(), password));
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_email_names_job_host_causes_hint_and_log() {
        let err = crate::cause::tag(
            anyhow::anyhow!("Connection refused (os error 111)")
                .context("connect to pgferry@viz:22"),
            crate::cause::Cause::Link,
        );
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let email = failed(
            "partial",
            "primary1",
            now,
            &err,
            1,
            "6h",
            &["line one".into()],
        );
        assert_eq!(email.subject, "[pgferry] FAILED: partial on primary1");
        assert!(
            email
                .body
                .contains("failed on primary1 at 2027-01-15T08:00:00+00:00"),
            "{}",
            email.body
        );
        assert!(
            email
                .body
                .contains("  connect to pgferry@viz:22\n  Connection refused (os error 111)"),
            "{}",
            email.body
        );
        assert!(
            email
                .body
                .contains("What to check:\n  the network path to the receiver"),
            "{}",
            email.body
        );
        assert!(
            email
                .body
                .contains("Last log lines of the run:\n  line one"),
            "{}",
            email.body
        );
    }

    #[test]
    fn a_missing_password_variable_is_named() {
        let settings = AlertSettings {
            smtp_host: "localhost".into(),
            smtp_port: 25,
            security: SmtpSecurity::None,
            username: Some("u".into()),
            password_env: Some("PGFERRY_TEST_SURELY_UNSET".into()),
            from: "a@b.c".into(),
            to: vec!["d@e.f".into()],
            repeat_after: None,
        };
        let err = transport(&settings).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the SMTP password variable PGFERRY_TEST_SURELY_UNSET (alerts.password_env) is not set"
        );
    }
}
