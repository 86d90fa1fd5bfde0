//! The load's transaction: one `psql` child that holds it open and reads the SQL the load
//! streams. A failure says whether the bundle was refused (one of its statements failed,
//! and would again) or the database failed (worth a retry).

use std::process::Stdio;

use anyhow::Context;
use pgferry::cause::{self, Cause};
use pgferry::pg::child::{Ended, PsqlChild};
use pgferry::pg::Psql;

use crate::load::ddl;
use crate::load::refused::{Refused, PSQL_SCRIPT_ERROR};

/// The load's `psql` child holding one open transaction, fed through its stdin.
pub struct Transaction {
    psql: PsqlChild,
}

impl Transaction {
    pub fn begin(psql: &Psql) -> anyhow::Result<Transaction> {
        let (psql, _) = PsqlChild::spawn(psql, &[], Stdio::null(), 1 << 20)?;
        let mut transaction = Transaction { psql };
        transaction.write(b"SET client_min_messages = warning;\nBEGIN;\n")?;
        transaction.write(ddl::RESET.as_bytes())?;
        Ok(transaction)
    }

    pub fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.psql.write(bytes).map_err(|_| self.failure())
    }

    /// psql stopped reading: report why, from its exit status and stderr.
    fn failure(&mut self) -> anyhow::Error {
        match self.psql.wait() {
            Ok(ended) => self.failed(ended),
            Err(err) => cause::tag(
                anyhow::anyhow!(
                    "load into {} failed, nothing was changed (wait for psql: {err})",
                    self.psql.target
                ),
                Cause::Database,
            ),
        }
    }

    pub fn commit(mut self) -> anyhow::Result<()> {
        self.write(b"COMMIT;\n")?;
        // A psql that died while the last bytes were still buffered reports why (its
        // status and stderr), not merely the broken pipe.
        if self.psql.close_input().is_err() {
            return Err(self.failure());
        }
        let ended = self.psql.wait().context("wait for psql")?;
        if !ended.status.success() {
            return Err(self.failed(ended));
        }
        Ok(())
    }

    /// The error of a psql that exited: a refusal when one of the bundle's statements
    /// failed, since loading it again would fail the same way.
    fn failed(&self, ended: Ended) -> anyhow::Error {
        let refusal = Refused::Statement {
            target: self.psql.target.clone(),
            status: ended.status.to_string(),
            message: ended.stderr,
        };
        if ended.status.code() == Some(PSQL_SCRIPT_ERROR) {
            refusal.into()
        } else {
            cause::tag(anyhow::anyhow!("{refusal}"), Cause::Database)
        }
    }
}
