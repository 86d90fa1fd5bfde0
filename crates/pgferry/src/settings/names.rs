//! Table and column names as the config writes them (SPEC "Names"): catalog spelling,
//! case-sensitive, `public` when no schema is given, `*` and `?` as globs, double quotes only
//! around a part that itself holds `.`, `*`, `?` or `"`. Resolution against the catalog
//! happens later, where the database is at hand.

use std::fmt;
use std::str::FromStr;

use crate::pg::ident::quote_ident;

/// One dot-separated part of a name: a literal, or a glob when it has unquoted `*`/`?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePart {
    Literal(String),
    Glob(String),
}

impl NamePart {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePart::Literal(literal) => literal == name,
            NamePart::Glob(glob) => glob_match(glob, name),
        }
    }

    pub fn is_glob(&self) -> bool {
        matches!(self, NamePart::Glob(_))
    }
}

/// A table name or pattern: `schema.table`, `table` (meaning `public.table`), globs allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    pub schema: NamePart,
    pub table: NamePart,
    written: String,
}

impl TablePattern {
    pub fn matches(&self, name: &QualifiedName) -> bool {
        self.schema.matches(&name.schema) && self.table.matches(&name.name)
    }

    pub fn is_glob(&self) -> bool {
        self.schema.is_glob() || self.table.is_glob()
    }

    /// The exact table, when the pattern has no globs.
    pub fn literal(&self) -> Option<QualifiedName> {
        match (&self.schema, &self.table) {
            (NamePart::Literal(schema), NamePart::Literal(name)) => {
                Some(QualifiedName::new(schema, name))
            }
            _ => None,
        }
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl FromStr for TablePattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = split_name(text)?;
        let (schema, table) = match parts.len() {
            1 => (NamePart::Literal("public".into()), parts.remove(0)),
            2 => {
                let table = parts.remove(1);
                (parts.remove(0), table)
            }
            n => {
                return Err(format!(
                    "invalid table name {text:?}: {n} dot-separated parts, expected \"schema.table\" or \"table\" (quote a part that contains a dot)"
                ))
            }
        };
        Ok(TablePattern {
            schema,
            table,
            written: text.to_string(),
        })
    }
}

/// A column of a table: `schema.table.column`, or `table.column` in `public`. No globs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    pub table: QualifiedName,
    pub column: String,
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

impl FromStr for ColumnRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts = split_name(text)?;
        if parts.iter().any(NamePart::is_glob) {
            return Err(format!("invalid column name {text:?}: globs are not allowed here (quote a name that contains * or ?)"));
        }
        let literals: Vec<String> = parts
            .into_iter()
            .map(|part| match part {
                NamePart::Literal(s) | NamePart::Glob(s) => s,
            })
            .collect();
        match literals.as_slice() {
            [table, column] => Ok(ColumnRef {
                table: QualifiedName::new("public", table),
                column: column.clone(),
            }),
            [schema, table, column] => Ok(ColumnRef {
                table: QualifiedName::new(schema, table),
                column: column.clone(),
            }),
            _ => Err(format!(
                "invalid column name {text:?}: expected \"schema.table.column\" or \"table.column\""
            )),
        }
    }
}

/// A resolved table: schema and name exactly as the catalog spells them.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: &str, name: &str) -> Self {
        QualifiedName {
            schema: schema.to_string(),
            name: name.to_string(),
        }
    }

    /// The SQL form, always quoted: `"public"."AndroidRequests_report"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// The form pg_dump's `-t` takes to mean exactly this table.
    pub fn dump_pattern(&self) -> String {
        self.quoted()
    }
}

/// Shown as the config spells it: a part with `.`, `*`, `?` or `"` in double quotes, so
/// messages are never ambiguous and can be pasted back into the config.
impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = |p: &str| {
            if p.contains(['.', '*', '?', '"']) {
                quote_ident(p)
            } else {
                p.to_string()
            }
        };
        write!(f, "{}.{}", part(&self.schema), part(&self.name))
    }
}

/// Splits on unquoted dots. A quoted part is literal; an unquoted one is a glob when it
/// holds `*` or `?`.
fn split_name(text: &str) -> Result<Vec<NamePart>, String> {
    if text.trim().is_empty() {
        return Err("empty name, expected \"schema.table\"".to_string());
    }
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let part = if chars.peek() == Some(&'"') {
            chars.next();
            let mut literal = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        literal.push('"');
                    }
                    Some('"') => break,
                    Some(c) => literal.push(c),
                    None => return Err(format!("invalid name {text:?}: unclosed double quote")),
                }
            }
            if literal.is_empty() {
                return Err(format!("invalid name {text:?}: empty quoted part"));
            }
            NamePart::Literal(literal)
        } else {
            let mut raw = String::new();
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err(format!(
                        "invalid name {text:?}: a double quote must enclose a whole part"
                    ));
                }
                raw.push(c);
                chars.next();
            }
            if raw.is_empty() {
                return Err(format!("invalid name {text:?}: empty part"));
            }
            if raw.contains(['*', '?']) {
                NamePart::Glob(raw)
            } else {
                NamePart::Literal(raw)
            }
        };
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => {
                return Err(format!(
                    "invalid name {text:?}: unexpected {c:?} after a quoted part, expected '.'"
                ))
            }
        }
    }
}

/// Shell-style matching with `*` (any run) and `?` (one character), case-sensitive.
fn glob_match(glob: &str, name: &str) -> bool {
    let glob: Vec<char> = glob.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if g < glob.len() && (glob[g] == '?' || glob[g] == name[n]) {
            g += 1;
            n += 1;
        } else if g < glob.len() && glob[g] == '*' {
            star = Some((g, n));
            g += 1;
        } else if let Some((star_g, star_n)) = star {
            g = star_g + 1;
            n = star_n + 1;
            star = Some((star_g, star_n + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|&c| c == '*')
}

/// Resolves patterns against the catalog's tables. Returns, per pattern, the tables it
/// matched, or the index of the first pattern that matched nothing.
pub fn resolve<'a>(
    patterns: impl IntoIterator<Item = &'a TablePattern>,
    catalog: &[QualifiedName],
) -> Result<Vec<QualifiedName>, (usize, &'a TablePattern)> {
    let mut found: Vec<QualifiedName> = Vec::new();
    for (index, pattern) in patterns.into_iter().enumerate() {
        let matched: Vec<&QualifiedName> = catalog.iter().filter(|t| pattern.matches(t)).collect();
        if matched.is_empty() {
            return Err((index, pattern));
        }
        for table in matched {
            if !found.contains(table) {
                found.push(table.clone());
            }
        }
    }
    found.sort();
    Ok(found)
}

deserialize_from_str!(TablePattern, ColumnRef);

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: &str, name: &str) -> QualifiedName {
        QualifiedName::new(schema, name)
    }

    #[test]
    fn a_bare_name_means_public() {
        let p: TablePattern = "AndroidRequests_report".parse().unwrap();
        assert!(p.matches(&t("public", "AndroidRequests_report")));
        assert!(!p.matches(&t("public", "androidrequests_report")));
    }

    #[test]
    fn globs_match_capitals_and_all() {
        let p: TablePattern = "public.AndroidRequests_*".parse().unwrap();
        assert!(p.matches(&t("public", "AndroidRequests_report")));
        assert!(p.matches(&t("public", "AndroidRequests_")));
        assert!(!p.matches(&t("other", "AndroidRequests_report")));
        let q: TablePattern = "*.bus?".parse().unwrap();
        assert!(q.matches(&t("transit", "bus1")));
        assert!(!q.matches(&t("transit", "bus12")));
    }

    #[test]
    fn quotes_protect_dots_and_globs() {
        let p: TablePattern = r#"public."a.b*""#.parse().unwrap();
        assert_eq!(p.literal(), Some(t("public", "a.b*")));
        let q: TablePattern = r#""we""ird"."x""#.parse().unwrap();
        assert_eq!(q.literal(), Some(t("we\"ird", "x")));
    }

    #[test]
    fn names_display_as_the_config_spells_them_and_parse_back() {
        for (schema, name, shown) in [
            (
                "public",
                "AndroidRequests_report",
                "public.AndroidRequests_report",
            ),
            ("Sch ema", "We\"ird Tåble", r#"Sch ema."We""ird Tåble""#),
            ("public", "a.b*", r#"public."a.b*""#),
        ] {
            let table = t(schema, name);
            assert_eq!(table.to_string(), shown);
            let parsed: TablePattern = shown.parse().unwrap();
            assert_eq!(parsed.literal(), Some(table));
        }
    }

    #[test]
    fn bad_names_are_refused() {
        assert!("a.b.c".parse::<TablePattern>().is_err());
        assert!("".parse::<TablePattern>().is_err());
        assert!("a..b".parse::<TablePattern>().is_err());
        assert!("\"open".parse::<TablePattern>().is_err());
        assert!("x.*".parse::<ColumnRef>().is_err());
    }

    #[test]
    fn columns_take_two_or_three_parts() {
        let c: ColumnRef = "public.AndroidRequests_report.imageName".parse().unwrap();
        assert_eq!(c.table, t("public", "AndroidRequests_report"));
        assert_eq!(c.column, "imageName");
        let d: ColumnRef = "report.imageName".parse().unwrap();
        assert_eq!(d.table, t("public", "report"));
    }

    #[test]
    fn quoting_doubles_inner_quotes() {
        assert_eq!(t("public", "we\"ird").quoted(), r#""public"."we""ird""#);
    }

    #[test]
    fn resolve_reports_the_pattern_that_matched_nothing() {
        let catalog = vec![t("public", "a1"), t("public", "a2"), t("public", "b")];
        let patterns: Vec<TablePattern> = vec!["a*".parse().unwrap(), "nope".parse().unwrap()];
        assert_eq!(resolve(&patterns, &catalog).unwrap_err().0, 1);
        let ok: Vec<TablePattern> = vec!["a*".parse().unwrap(), "a1".parse().unwrap()];
        assert_eq!(
            resolve(&ok, &catalog).unwrap(),
            vec![t("public", "a1"), t("public", "a2")]
        );
    }
}
