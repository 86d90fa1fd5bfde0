//! The steps of loading one bundle into the target, used by `receiver load` only: decide
//! what the bundle does to each table ([`plan`], [`schema_diff`]), then apply it
//! ([`apply`]) as its [`entries`] stream, in one `psql` [`transaction`], with its DDL
//! contained ([`ddl`]), its data filtered ([`dump_filter`], [`dump_syntax`],
//! [`csv_to_copy`]), live tables' rows replaced without blocking readers ([`merge`]),
//! partial rows upserted ([`upsert`]), triggers paused ([`triggers`]), indexes and keys
//! after the data ([`post_data`]) and the [`ledger`] row. A bundle the target cannot take
//! is [`refused`]; an old one that comes back is caught by [`old_bundles`].

pub mod apply;
pub mod changes;
pub mod csv_to_copy;
pub mod ddl;
pub mod dump_filter;
pub mod dump_syntax;
pub mod entries;
pub mod ledger;
pub mod merge;
pub mod old_bundles;
pub mod plan;
pub mod post_data;
pub mod refused;
pub mod schema_diff;
pub mod transaction;
pub mod triggers;
pub mod upsert;
