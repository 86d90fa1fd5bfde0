//! libpq connection fields for `[source]` and `[target]`. They are handed to `psql` and
//! `pg_dump` as `PG*` environment variables, so libpq itself finds the password
//! (`PGPASSFILE`, `~/.pgpass`, `PGPASSWORD`) and nothing secret sits in a file or an argv.

/// Where a database is, as libpq fields (all but `password`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// `(PGVAR, value)` for every field that is set.
    pub env: Vec<(&'static str, String)>,
}

impl Connection {
    fn get(&self, var: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(name, _)| *name == var)
            .map(|(_, v)| v.as_str())
    }

    /// Where it points, for messages: `host:port/dbname`, never a password.
    pub fn describe(&self) -> String {
        format!(
            "{}:{}/{}",
            self.get("PGHOST").unwrap_or("localhost"),
            self.get("PGPORT").unwrap_or("5432"),
            self.get("PGDATABASE").unwrap_or("?")
        )
    }

    pub fn host(&self) -> &str {
        self.get("PGHOST").unwrap_or("localhost")
    }

    pub fn dbname(&self) -> &str {
        self.get("PGDATABASE").unwrap_or("")
    }
}

/// Declares a config section made of the libpq fields plus `extra` fields. serde's
/// `flatten` would lose `deny_unknown_fields` and the key paths in errors, hence a macro.
macro_rules! libpq_section {
    ($(#[$meta:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[serde(default)] pub host: Option<String>,
            #[serde(default)] pub hostaddr: Option<String>,
            #[serde(default)] pub port: Option<PortValue>,
            #[serde(default)] pub user: Option<String>,
            #[serde(default)] pub dbname: Option<String>,
            #[serde(default)] pub passfile: Option<String>,
            #[serde(default)] pub connect_timeout: Option<PortValue>,
            #[serde(default)] pub options: Option<String>,
            #[serde(default)] pub application_name: Option<String>,
            #[serde(default)] pub sslmode: Option<String>,
            #[serde(default)] pub sslcert: Option<String>,
            #[serde(default)] pub sslkey: Option<String>,
            #[serde(default)] pub sslrootcert: Option<String>,
            #[serde(default)] pub sslcrl: Option<String>,
            #[serde(default)] pub target_session_attrs: Option<String>,
            #[serde(default)] pub service: Option<String>,
            /// Present only so its use can be refused with a helpful message.
            #[serde(default)] pub password: Option<toml::Value>,
            $($extra)*
        }

        impl $name {
            pub fn connection(&self) -> $crate::settings::connection::Connection {
                let mut env = Vec::new();
                let fields: [(&'static str, Option<String>); 16] = [
                    ("PGHOST", self.host.clone()),
                    ("PGHOSTADDR", self.hostaddr.clone()),
                    ("PGPORT", self.port.as_ref().map(|p| p.0.clone())),
                    ("PGUSER", self.user.clone()),
                    ("PGDATABASE", self.dbname.clone()),
                    ("PGPASSFILE", self.passfile.clone()),
                    ("PGCONNECT_TIMEOUT", self.connect_timeout.as_ref().map(|p| p.0.clone())),
                    ("PGOPTIONS", self.options.clone()),
                    ("PGAPPNAME", self.application_name.clone()),
                    ("PGSSLMODE", self.sslmode.clone()),
                    ("PGSSLCERT", self.sslcert.clone()),
                    ("PGSSLKEY", self.sslkey.clone()),
                    ("PGSSLROOTCERT", self.sslrootcert.clone()),
                    ("PGSSLCRL", self.sslcrl.clone()),
                    ("PGTARGETSESSIONATTRS", self.target_session_attrs.clone()),
                    ("PGSERVICE", self.service.clone()),
                ];
                for (var, value) in fields {
                    if let Some(value) = value {
                        env.push((var, value));
                    }
                }
                $crate::settings::connection::Connection { env }
            }
        }
    };
}
pub(crate) use libpq_section;

/// A port or timeout that may be written as a number or a string (`5432` or `"5432"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortValue(pub String);

impl<'de> serde::Deserialize<'de> for PortValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Text(String),
        }
        match Raw::deserialize(deserializer) {
            Ok(Raw::Number(n)) => Ok(PortValue(n.to_string())),
            Ok(Raw::Text(t)) if t.parse::<u32>().is_ok() => Ok(PortValue(t)),
            _ => Err(serde::de::Error::custom(
                "expected a whole number like 5432",
            )),
        }
    }
}
