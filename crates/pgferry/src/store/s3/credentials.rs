//! S3 credentials the standard way, never from pgferry's config: the AWS environment
//! variables, else the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, or
//! `~/.aws/credentials`) with the profile `AWS_PROFILE` (or `default`).

use std::path::PathBuf;

use aws_credential_types::Credentials;

/// Credentials and where they came from, which `check` reports (never the secret).
pub struct Found {
    pub credentials: Credentials,
    pub source: String,
}

impl Found {
    pub fn keys(key: &str, secret: &str, token: Option<&str>, source: &str) -> Found {
        Found {
            credentials: Credentials::new(key, secret, token.map(str::to_string), None, "pgferry"),
            source: source.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{present} is set but {missing} is not; set both, or neither to use the shared credentials file")]
    HalfSet {
        present: &'static str,
        missing: &'static str,
    },
    #[error("no S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set and {file} does not exist\nhint: set the two variables in the service's environment, or write profile [{profile}] into {file}")]
    Nothing { file: String, profile: String },
    #[error("read the shared credentials file {file}: {problem}")]
    Unreadable { file: String, problem: String },
    #[error("the shared credentials file {file} has no profile [{profile}] with aws_access_key_id and aws_secret_access_key\nhint: set AWS_PROFILE to a profile the file has")]
    NoProfile { file: String, profile: String },
}

/// Finds credentials in the environment, then in the shared credentials file.
pub fn find() -> Result<Found, CredentialsError> {
    find_in(&|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

fn find_in(var: &dyn Fn(&str) -> Option<String>) -> Result<Found, CredentialsError> {
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(key), Some(secret)) => {
            let token = var("AWS_SESSION_TOKEN");
            return Ok(Found::keys(
                &key,
                &secret,
                token.as_deref(),
                "the environment (AWS_ACCESS_KEY_ID)",
            ));
        }
        (Some(_), None) => {
            return Err(CredentialsError::HalfSet {
                present: "AWS_ACCESS_KEY_ID",
                missing: "AWS_SECRET_ACCESS_KEY",
            })
        }
        (None, Some(_)) => {
            return Err(CredentialsError::HalfSet {
                present: "AWS_SECRET_ACCESS_KEY",
                missing: "AWS_ACCESS_KEY_ID",
            })
        }
        (None, None) => {}
    }
    let file = match var("AWS_SHARED_CREDENTIALS_FILE") {
        Some(file) => PathBuf::from(file),
        None => PathBuf::from(var("HOME").unwrap_or_default()).join(".aws/credentials"),
    };
    let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
    let shown = file.display().to_string();
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(CredentialsError::Nothing {
                file: shown,
                profile,
            })
        }
        Err(err) => {
            return Err(CredentialsError::Unreadable {
                file: shown,
                problem: err.to_string(),
            })
        }
    };
    let ini = ini::Ini::load_from_str(&text).map_err(|err| CredentialsError::Unreadable {
        file: shown.clone(),
        problem: err.to_string(),
    })?;
    let section = ini.section(Some(profile.as_str()));
    let field = |name: &str| {
        section
            .and_then(|s| s.get(name))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let (Some(key), Some(secret)) = (field("aws_access_key_id"), field("aws_secret_access_key"))
    else {
        return Err(CredentialsError::NoProfile {
            file: shown,
            profile,
        });
    };
    Ok(Found::keys(
        key,
        secret,
        field("aws_session_token"),
        &format!("the shared credentials file {shown}, profile [{profile}]"),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<Found, CredentialsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        find_in(&move |name| vars.get(name).cloned())
    }

    #[test]
    fn the_environment_comes_first_then_the_profile_of_the_shared_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n\n[ferry]\naws_access_key_id=AKFERRY\naws_secret_access_key=s2\naws_session_token=t2\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let env = with(&[
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "s0"),
            ("AWS_SHARED_CREDENTIALS_FILE", file),
        ])
        .unwrap();
        assert_eq!(env.credentials.access_key_id(), "AKENV");
        assert_eq!(env.source, "the environment (AWS_ACCESS_KEY_ID)");
        let default = with(&[("AWS_SHARED_CREDENTIALS_FILE", file)]).unwrap();
        assert_eq!(default.credentials.access_key_id(), "AKDEFAULT");
        let ferry = with(&[
            ("AWS_SHARED_CREDENTIALS_FILE", file),
            ("AWS_PROFILE", "ferry"),
        ])
        .unwrap();
        assert_eq!(ferry.credentials.access_key_id(), "AKFERRY");
        assert_eq!(ferry.credentials.session_token(), Some("t2"));
        assert!(
            ferry.source.ends_with("profile [ferry]"),
            "{}",
            ferry.source
        );
        let missing = with(&[
            ("AWS_SHARED_CREDENTIALS_FILE", file),
            ("AWS_PROFILE", "gone"),
        ]);
        assert!(matches!(missing, Err(CredentialsError::NoProfile { .. })));
    }

    #[test]
    fn half_set_or_nothing_is_named() {
        let half = with(&[("AWS_ACCESS_KEY_ID", "AK")])
            .err()
            .unwrap()
            .to_string();
        assert!(half.contains("AWS_SECRET_ACCESS_KEY is not"), "{half}");
        let none = with(&[("HOME", "/nonexistent-home")])
            .err()
            .unwrap()
            .to_string();
        assert!(
            none.contains("/nonexistent-home/.aws/credentials does not exist"),
            "{none}"
        );
    }
}
