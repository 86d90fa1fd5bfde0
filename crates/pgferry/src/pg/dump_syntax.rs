//! The names pg_dump writes in its output, parsed back: both sides read `COPY` headers
//! (the sender to count rows, the receiver to check them against the manifest).

/// An identifier as pg_dump writes it: lowercase plain, or double-quoted.
pub fn identifier(text: &str) -> Option<(String, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().map(|&(_, n)| n) == Some('"') {
                    chars.next();
                    name.push('"');
                } else {
                    return (!name.is_empty()).then(|| (name, &quoted[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = text
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$'))
            .unwrap_or(text.len());
        let name = &text[..end];
        let first_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        first_ok.then(|| (name.to_string(), &text[end..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_parse_as_pg_dump_quotes_them() {
        assert_eq!(identifier("public.x"), Some(("public".into(), ".x")));
        assert_eq!(
            identifier("\"We\"\"ird.T\" ("),
            Some(("We\"ird.T".into(), " ("))
        );
        assert_eq!(identifier("Public.x"), None);
        assert_eq!(identifier("\"\".x"), None);
    }
}
