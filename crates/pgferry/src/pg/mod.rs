//! Talking to PostgreSQL through its own tools: `psql` for queries and loads, `pg_dump` for
//! dumps. libpq then handles passwords, TLS and service files exactly as the operator
//! configured them.

pub mod catalog;
pub mod child;
pub mod dependencies;
pub mod dump_syntax;
pub mod ident;
pub mod pgoutput;
pub mod programs;
pub mod psql;
pub mod session;
pub mod slot;

pub use psql::Psql;
pub use session::Session;
