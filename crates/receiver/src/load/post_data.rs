//! Orders the post-data DDL of the tables a complete bundle creates. Each table's
//! `pg_dump --section=post-data` holds its keys, indexes and foreign keys; a foreign key
//! needs the referenced table's key first, so when tables reference each other (or in a
//! cycle) every foreign key must wait until all keys exist.

/// `posts` split into what creates keys and indexes (first) and foreign keys (last). Each
/// part keeps the dump's preamble (`SET` lines), so either runs on its own.
pub fn order(posts: &[Vec<u8>]) -> Vec<u8> {
    let mut first = Vec::new();
    let mut last = Vec::new();
    for post in posts {
        let (keys, foreign) = split(post);
        first.extend_from_slice(&keys);
        first.push(b'\n');
        last.extend_from_slice(&foreign);
        last.push(b'\n');
    }
    first.extend_from_slice(&last);
    first
}

/// One dump split at its `-- Name: ...; Type: ...;` object headers into everything else
/// and the `FK CONSTRAINT` objects. Each part gets the preamble (which opens psql's
/// `\restrict` mode) and the closing `\unrestrict`, so both stay balanced.
fn split(post: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let text = String::from_utf8_lossy(post);
    let mut preamble = String::new();
    let mut others = String::new();
    let mut foreign = String::new();
    let mut closing = String::new();
    let mut current: Option<&mut String> = None;
    for line in text.split_inclusive('\n') {
        if line.starts_with("\\unrestrict ") {
            closing.push_str(line);
            continue;
        }
        if line.starts_with("-- Name: ") {
            current = Some(if line.contains("; Type: FK CONSTRAINT;") {
                &mut foreign
            } else {
                &mut others
            });
        }
        match current.as_mut() {
            Some(part) => part.push_str(line),
            None => preamble.push_str(line),
        }
    }
    if others.is_empty() && foreign.is_empty() {
        // No object headers: nothing to reorder, keep every byte.
        return (post.to_vec(), Vec::new());
    }
    let with_preamble = |part: String| {
        if part.is_empty() {
            Vec::new()
        } else {
            format!("{preamble}{part}{closing}").into_bytes()
        }
    };
    (with_preamble(others), with_preamble(foreign))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "\\restrict K\nSET statement_timeout = 0;\n\n--\n-- Name: node node_pkey; Type: CONSTRAINT; Schema: public; Owner: -\n--\n\nALTER TABLE ONLY public.node ADD CONSTRAINT node_pkey PRIMARY KEY (id);\n\n--\n-- Name: node node_other_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -\n--\n\nALTER TABLE ONLY public.node ADD CONSTRAINT node_other_id_fkey FOREIGN KEY (other_id) REFERENCES public.other(id);\n\\unrestrict K\n";
    const OTHER: &str = "SET statement_timeout = 0;\n\n--\n-- Name: other other_pkey; Type: CONSTRAINT; Schema: public; Owner: -\n--\n\nALTER TABLE ONLY public.other ADD CONSTRAINT other_pkey PRIMARY KEY (id);\n";

    #[test]
    fn foreign_keys_wait_until_every_key_exists() {
        let sql = String::from_utf8(order(&[NODE.into(), OTHER.into()])).unwrap();
        let node_key = sql.find("node_pkey PRIMARY KEY").unwrap();
        let other_key = sql.find("other_pkey PRIMARY KEY").unwrap();
        let fk = sql.find("node_other_id_fkey FOREIGN KEY").unwrap();
        assert!(node_key < fk && other_key < fk, "{sql}");
        assert_eq!(sql.matches("FOREIGN KEY").count(), 1);
        assert_eq!(sql.matches("PRIMARY KEY").count(), 2);
        assert!(sql.starts_with("\\restrict K\nSET statement_timeout = 0;"));
        // Every \restrict is closed before the next one opens.
        let marks: Vec<&str> = sql.lines().filter(|l| l.contains("restrict")).collect();
        assert_eq!(
            marks,
            [
                "\\restrict K",
                "\\unrestrict K",
                "\\restrict K",
                "\\unrestrict K"
            ]
        );
    }

    #[test]
    fn a_dump_without_headers_is_kept_whole() {
        let sql = String::from_utf8(order(&[b"CREATE INDEX i ON t (c);\n".to_vec()])).unwrap();
        assert_eq!(sql.trim(), "CREATE INDEX i ON t (c);");
    }
}
