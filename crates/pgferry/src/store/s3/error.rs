//! A request the store failed, with the store's own error code and message (`AccessDenied`,
//! `NoSuchBucket`, `SlowDown`), so the alert says what the store said.

use serde::Deserialize;

/// One failed request to an S3-compatible store.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The store answered with an error status.
    #[error("{operation} on {store}: {code}: {message} (HTTP {status}{request})")]
    Answered {
        operation: String,
        store: String,
        status: u16,
        code: String,
        message: String,
        /// `, request ID …` when the store sent one, for the store's admin.
        request: String,
    },
    /// No answer: the connection failed, or the store stopped answering for the timeout.
    #[error("{operation} on {store}: {source}")]
    Unreachable {
        operation: String,
        store: String,
        #[source]
        source: ureq::Error,
    },
}

impl S3Error {
    /// Whether a later attempt may succeed: the store's 5xx and throttling, or a connection
    /// that failed before anything was sent. A timeout is not retried: a store that stopped
    /// answering would make every attempt wait out the timeout again.
    pub fn is_transient(&self) -> bool {
        match self {
            S3Error::Answered { status, code, .. } => {
                *status >= 500 || *status == 429 || code == "SlowDown" || code == "RequestTimeout"
            }
            S3Error::Unreachable { source, .. } => {
                matches!(
                    source,
                    ureq::Error::ConnectionFailed | ureq::Error::Io(_) | ureq::Error::HostNotFound
                ) && !is_timeout(source)
            }
        }
    }

    /// Whether the store refused who we are or what we may do: credentials, permissions,
    /// or a bucket that is not there.
    pub fn is_access(&self) -> bool {
        match self {
            S3Error::Answered { status, code, .. } => {
                matches!(*status, 401 | 403)
                    || matches!(
                        code.as_str(),
                        "NoSuchBucket" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"
                    )
            }
            S3Error::Unreachable { .. } => false,
        }
    }

    /// The store's error code (`NoSuchKey`, …), when it answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Answered { code, .. } => Some(code),
            S3Error::Unreachable { .. } => None,
        }
    }
}

fn is_timeout(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Timeout(_) => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ),
        _ => false,
    }
}

/// The XML body S3 sends with an error status.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    request_id: String,
}

/// Builds the error of a request answered with `status` and `body`. A body that is not
/// S3's error XML (a proxy's page, a HEAD without body) still gives the status.
pub fn answered(operation: &str, store: &str, status: u16, body: &str) -> S3Error {
    let parsed: ErrorBody = quick_xml::de::from_str(body).unwrap_or_default();
    let code = if parsed.code.is_empty() {
        match status {
            403 => "AccessDenied".to_string(),
            404 => "NotFound".to_string(),
            412 => "PreconditionFailed".to_string(),
            503 => "ServiceUnavailable".to_string(),
            _ => format!("HTTP{status}"),
        }
    } else {
        parsed.code
    };
    let message = if parsed.message.is_empty() {
        let text = body.trim();
        if text.is_empty() || text.starts_with('<') {
            "no message".to_string()
        } else {
            text.chars().take(200).collect()
        }
    } else {
        parsed.message
    };
    S3Error::Answered {
        operation: operation.to_string(),
        store: store.to_string(),
        status,
        code,
        message,
        request: if parsed.request_id.is_empty() {
            String::new()
        } else {
            format!(", request ID {}", parsed.request_id)
        },
    }
}

/// A success answer whose body does not parse as what the request asks for.
pub fn unreadable(operation: &str, store: &str, err: impl std::fmt::Display) -> S3Error {
    answered(operation, store, 200, &format!("unreadable answer: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stores_code_and_message_are_kept() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>R1</RequestId></Error>";
        let err = answered("list", "s3://b/p/", 503, body);
        assert_eq!(
            err.to_string(),
            "list on s3://b/p/: SlowDown: Please reduce your request rate. (HTTP 503, request ID R1)"
        );
        assert!(err.is_transient());
        assert!(!err.is_access());
        let denied = answered("put", "s3://b/", 403, "");
        assert_eq!(denied.code(), Some("AccessDenied"));
        assert!(denied.is_access() && !denied.is_transient());
        let bucket = answered("list", "s3://b/", 404, "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>");
        assert!(bucket.is_access());
    }
}
