//! The few line shapes pg_dump writes outside COPY data, parsed strictly: a line that
//! only resembles one (a second statement after the `;`, a backslash in a literal, an
//! unknown setting) is not one.

/// The settings pg_dump writes at the top of a data dump.
const SETTINGS: &[&str] = &[
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "transaction_timeout",
    "client_encoding",
    "standard_conforming_strings",
    "check_function_bodies",
    "xmloption",
    "client_min_messages",
    "row_security",
    "default_tablespace",
    "default_table_access_method",
];

/// Client encodings whose multibyte characters can hold ASCII bytes such as `'` or `\`:
/// psql would split statements differently than this filter reads them.
const UNSAFE_ENCODINGS: &[&str] = &[
    "sjis",
    "shiftjis",
    "mskanji",
    "win932",
    "windows932",
    "shiftjis2004",
    "big5",
    "win950",
    "windows950",
    "gbk",
    "win936",
    "windows936",
    "uhc",
    "win949",
    "windows949",
    "gb18030",
    "johab",
];

/// A `SET name = value;` line of a known setting with a plain value, as is.
pub fn set_line(line: &str) -> Option<String> {
    let rest = line.strip_prefix("SET ")?.strip_suffix(';')?;
    let (name, value) = rest.split_once(" = ")?;
    if !SETTINGS.contains(&name) {
        return None;
    }
    let plain = |v: &str| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    let valid = match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(quoted) => quoted.is_empty() || plain(quoted),
        None => plain(value),
    };
    if !valid {
        return None;
    }
    let bare = value.trim_matches('\'');
    match name {
        "standard_conforming_strings" if bare != "on" => return None,
        "client_encoding" => {
            let normal: String = bare
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if UNSAFE_ENCODINGS.contains(&normal.as_str()) {
                return None;
            }
        }
        _ => {}
    }
    Some(format!("{line}\n"))
}

/// A standard string literal `'...'` with `''` for a quote and no backslash.
pub fn string_literal(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' if chars.peek().map(|&(_, n)| n) == Some('\'') => {
                chars.next();
                value.push('\'');
            }
            '\'' => return Some((value, &body[i + 1..])),
            '\\' => return None,
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_settings_with_plain_values_pass() {
        for line in [
            "SET statement_timeout = 0;",
            "SET client_encoding = 'UTF8';",
            "SET client_encoding = 'LATIN1';",
            "SET default_tablespace = '';",
            "SET default_table_access_method = heap;",
            "SET standard_conforming_strings = on;",
        ] {
            assert_eq!(set_line(line), Some(format!("{line}\n")), "{line}");
        }
        for line in [
            "SET role = postgres;",
            "SET session_replication_role = replica;",
            "SET standard_conforming_strings = off;",
            "SET client_encoding = 'SJIS';",
            "SET client_encoding = 'Shift_JIS';",
            "SET statement_timeout = 0; COMMIT;",
            "SET default_tablespace = 'a'';b';",
            "SET xmloption = content",
        ] {
            assert_eq!(set_line(line), None, "{line}");
        }
    }

    #[test]
    fn literals_parse_as_pg_dump_quotes_them() {
        assert_eq!(string_literal("'a''b', 1"), Some(("a'b".into(), ", 1")));
        assert_eq!(string_literal("'a\\', 1"), None);
    }
}
