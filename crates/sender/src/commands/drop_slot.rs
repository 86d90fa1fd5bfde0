//! `sender drop-slot`: removes what `[partial] source = "logical"` made on the primary,
//! the replication slot and the publication. Until then a slot that no one reads keeps
//! every WAL segment since its position.

use std::path::Path;

use pgferry::exit::Exit;
use pgferry::pg::ident::quote_ident;
use pgferry::pg::Psql;
use pgferry::settings::SenderSettings;

use crate::slot;

pub fn run(config: &Path) -> anyhow::Result<Exit> {
    let settings = SenderSettings::read(config)?;
    let psql = Psql::new(settings.source.connection());
    let partial = &settings.partial;
    if slot::state(&psql, &partial.slot)?.is_some() {
        slot::drop_slot(&psql, &partial.slot)?;
        println!("dropped replication slot {}", partial.slot);
    } else {
        println!("replication slot {} does not exist", partial.slot);
    }
    psql.scalar(&format!(
        "DROP PUBLICATION IF EXISTS {}",
        quote_ident(&partial.publication)
    ))?;
    println!(
        "dropped publication {} (if it existed)",
        partial.publication
    );
    Ok(Exit::Done)
}
