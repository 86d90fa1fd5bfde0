//! Signed requests to an S3-compatible store: `rusty-s3` builds each action's URL and
//! parses the answers, `aws-sigv4` signs the request in its headers (SigV4, which every
//! S3-compatible store takes, and some only so), `ureq` sends. Every request is bounded by
//! the timeout (connect, and each read or write), and retried with backoff when the store
//! is throttling or failing on its side.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use rusty_s3::{Bucket, UrlStyle};
use ureq::http::Response;
use ureq::{Agent, Body};
use url::Url;

use super::error::{self, S3Error};
use crate::settings::store::S3Settings;

/// How long a signed URL is valid: one request, sent at once.
pub const PLAIN: Duration = Duration::from_secs(15 * 60);

/// Attempts of one request when the store answers 5xx or throttles, and the first wait
/// between them; each wait is four times the last (0.25 s, 1 s, 4 s).
const ATTEMPTS: u32 = 4;
const FIRST_WAIT: Duration = Duration::from_millis(250);

pub struct Client {
    agent: Agent,
    pub bucket: Bucket,
    pub credentials: Credentials,
    /// `s3://bucket/prefix`, for messages.
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Head,
    Put,
    Post,
    Delete,
}

impl Client {
    pub fn new(settings: &S3Settings, credentials: Credentials) -> anyhow::Result<Client> {
        let endpoint = Url::parse(&settings.endpoint)
            .map_err(|err| anyhow::anyhow!("endpoint {:?}: {err}", settings.endpoint))?;
        let style = if settings.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|err| {
            anyhow::anyhow!(
                "bucket {:?} at {}: {err}{}",
                settings.bucket,
                settings.endpoint,
                if settings.path_style {
                    ""
                } else {
                    "\nhint: a store addressed by IP address or without DNS names per bucket needs path_style = true"
                }
            )
        })?;
        let timeout = Some(settings.timeout());
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(timeout)
            .timeout_resolve(timeout)
            .timeout_send_request(timeout)
            .timeout_recv_response(timeout)
            .timeout_per_read(timeout)
            .timeout_per_write(timeout)
            .build()
            .into();
        Ok(Client {
            agent,
            bucket,
            credentials,
            label: settings.describe(),
        })
    }

    /// Sends one request, retrying what may pass later. A success status gives the
    /// response; anything else the store's error with its code and message.
    pub fn send(
        &self,
        operation: &str,
        verb: Verb,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response<Body>, S3Error> {
        let mut wait = FIRST_WAIT;
        let mut attempt = 1;
        loop {
            match self.send_once(operation, verb, url, headers, body) {
                Err(err) if attempt < ATTEMPTS && err.is_transient() => {
                    tracing::warn!(store = %self.label, attempt, error = %err, "retrying in {:.2} s", wait.as_secs_f64());
                    std::thread::sleep(wait);
                    wait *= 4;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn send_once(
        &self,
        operation: &str,
        verb: Verb,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response<Body>, S3Error> {
        let uri = url.as_str();
        let unreachable = |source| S3Error::Unreachable {
            operation: operation.to_string(),
            store: self.label.clone(),
            source,
        };
        let signed = self
            .signature(verb, uri, headers)
            .map_err(|err| unreachable(ureq::Error::Other(err)))?;
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .copied()
            .chain(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect();
        let headers = headers.as_slice();
        let sent = match verb {
            Verb::Get => with_headers(self.agent.get(uri), headers).call(),
            Verb::Head => with_headers(self.agent.head(uri), headers).call(),
            Verb::Delete => with_headers(self.agent.delete(uri), headers).call(),
            Verb::Put => with_headers(self.agent.put(uri), headers).send(body),
            Verb::Post => with_headers(self.agent.post(uri), headers).send(body),
        };
        let mut response = sent.map_err(unreachable)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let text = if verb == Verb::Head {
            String::new()
        } else {
            response
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()
                .unwrap_or_default()
        };
        Err(error::answered(operation, &self.label, status, &text))
    }

    /// The SigV4 headers of one request, signed now. The payload is not hashed
    /// (`UNSIGNED-PAYLOAD`, as for presigned URLs): parts are streamed once, and TLS
    /// protects them on the way; the bundle's own checksums protect them end to end.
    fn signature(
        &self,
        verb: Verb,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>, Box<dyn std::error::Error + Send + Sync>> {
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.bucket.region())
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()?
            .into();
        let method = match verb {
            Verb::Get => "GET",
            Verb::Head => "HEAD",
            Verb::Put => "PUT",
            Verb::Post => "POST",
            Verb::Delete => "DELETE",
        };
        let request = SignableRequest::new(
            method,
            uri,
            headers.iter().copied(),
            SignableBody::UnsignedPayload,
        )?;
        let (instructions, _) = sign(request, &params)?.into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// A GET whose answer is text (the store's XML lists).
    pub fn get_text(&self, operation: &str, url: &Url) -> Result<String, S3Error> {
        let response = self.send(operation, Verb::Get, url, &[], &[])?;
        self.text(operation, response)
    }

    /// A success response's body as text (the store's XML answers).
    pub fn text(&self, operation: &str, mut response: Response<Body>) -> Result<String, S3Error> {
        response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|source| S3Error::Unreachable {
                operation: operation.to_string(),
                store: self.label.clone(),
                source,
            })
    }
}

fn with_headers<B>(
    mut request: ureq::RequestBuilder<B>,
    headers: &[(&str, &str)],
) -> ureq::RequestBuilder<B> {
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

#[cfg(test)]
mod tests {
    use rusty_s3::S3Action;

    use super::*;

    fn settings(endpoint: &str, path_style: bool) -> S3Settings {
        S3Settings {
            endpoint: endpoint.to_string(),
            region: "eu-west-3".to_string(),
            bucket: "ferry".to_string(),
            prefix: "transapp/".to_string(),
            path_style,
            timeout: None,
        }
    }

    fn client(endpoint: &str, path_style: bool) -> anyhow::Result<Client> {
        Client::new(
            &settings(endpoint, path_style),
            Credentials::new("AK", "secret", None, None, "test"),
        )
    }

    #[test]
    fn both_url_styles_address_the_bucket_and_a_host_needs_a_name_for_the_virtual_one() {
        let object = |c: &Client| {
            c.bucket
                .get_object(None, "transapp/b.tar.gz")
                .sign(PLAIN)
                .to_string()
        };
        let virtual_host = client("https://s3.example.org", false).unwrap();
        assert_eq!(
            object(&virtual_host),
            "https://ferry.s3.example.org/transapp/b.tar.gz"
        );
        let path = client("http://127.0.0.1:9000", true).unwrap();
        assert_eq!(
            object(&path),
            "http://127.0.0.1:9000/ferry/transapp/b.tar.gz"
        );
        let err = client("http://127.0.0.1:9000", false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("path_style = true"), "{err}");
    }

    #[test]
    fn a_request_is_signed_in_its_headers_for_the_region_and_never_carries_the_secret() {
        let c = client("https://s3.example.org", false).unwrap();
        let headers = c
            .signature(
                Verb::Get,
                "https://ferry.s3.example.org/transapp/b.tar.gz",
                &[],
            )
            .unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        let authorization = get("authorization");
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AK/")
                && authorization.contains("/eu-west-3/s3/aws4_request"),
            "{authorization}"
        );
        assert_eq!(get("x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
        assert!(headers.iter().all(|(_, v)| !v.contains("secret")));
    }
}
