//! Quoting for SQL text that pgferry writes itself: every identifier from a config or a
//! catalog is quoted, never pasted (guarantee 10).

/// Quotes an identifier for SQL: `"` around it, inner `"` doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL (with standard_conforming_strings, the default).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled_inside() {
        assert_eq!(quote_ident(r#"We"ird Tåble"#), r#""We""ird Tåble""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
