//! Turns the CSV of a partial bundle into COPY's text format while it streams into `psql`.
//! Feeding CSV to `psql` directly is not safe: psql ends inline COPY data at any line that
//! is exactly `\.`, and a quoted multi-line CSV value can contain such a line. In text
//! format backslashes are escaped, so that line cannot occur.

/// Streaming CSV (as PostgreSQL writes it: `,`, `"` quoting, unquoted empty = NULL, one
/// header record) to COPY text format (tab-separated, `\N` for NULL).
#[derive(Debug, Default)]
pub struct CsvToCopy {
    state: State,
    /// The header's column names, once the first record has ended.
    pub header: Option<Vec<String>>,
    header_fields: Vec<String>,
    header_field: Vec<u8>,
    field_empty: bool,
    field_quoted: bool,
    pub records: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: either the end of the field or the first of `""`.
    QuoteInQuoted,
}

impl CsvToCopy {
    pub fn new() -> Self {
        CsvToCopy {
            field_empty: true,
            ..Default::default()
        }
    }

    fn in_header(&self) -> bool {
        self.header.is_none()
    }

    fn data(&mut self, byte: u8, out: &mut Vec<u8>) {
        self.field_empty = false;
        if self.in_header() {
            self.header_field.push(byte);
            return;
        }
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            other => out.push(other),
        }
    }

    fn end_field(&mut self, out: &mut Vec<u8>) {
        if self.in_header() {
            let name = String::from_utf8_lossy(&self.header_field).into_owned();
            self.header_fields.push(name);
            self.header_field.clear();
        } else if self.field_empty && !self.field_quoted {
            out.extend_from_slice(b"\\N");
        }
        self.field_empty = true;
        self.field_quoted = false;
    }

    fn end_record(&mut self, out: &mut Vec<u8>) {
        self.end_field(out);
        if self.in_header() {
            self.header = Some(std::mem::take(&mut self.header_fields));
        } else {
            out.push(b'\n');
            self.records += 1;
        }
    }

    fn separator(&mut self, out: &mut Vec<u8>) {
        self.end_field(out);
        if !self.in_header() {
            out.push(b'\t');
        }
    }

    /// Converts `input`, appending text-format bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &byte in input {
            self.state = match (self.state, byte) {
                (State::FieldStart, b'"') => {
                    self.field_quoted = true;
                    State::Quoted
                }
                (State::FieldStart | State::Unquoted, b',') => {
                    self.separator(out);
                    State::FieldStart
                }
                (State::FieldStart | State::Unquoted, b'\n') => {
                    self.end_record(out);
                    State::FieldStart
                }
                (State::FieldStart | State::Unquoted, other) => {
                    self.data(other, out);
                    State::Unquoted
                }
                (State::Quoted, b'"') => State::QuoteInQuoted,
                (State::Quoted, other) => {
                    self.data(other, out);
                    State::Quoted
                }
                (State::QuoteInQuoted, b'"') => {
                    self.data(b'"', out);
                    State::Quoted
                }
                (State::QuoteInQuoted, b',') => {
                    self.separator(out);
                    State::FieldStart
                }
                (State::QuoteInQuoted, b'\n') => {
                    self.end_record(out);
                    State::FieldStart
                }
                (State::QuoteInQuoted, other) => {
                    // Not valid CSV from COPY; keep the byte rather than lose it.
                    self.data(other, out);
                    State::Unquoted
                }
            };
        }
    }

    /// True when the input ended on a record boundary, as complete CSV does.
    pub fn at_record_start(&self) -> bool {
        self.state == State::FieldStart && self.field_empty && !self.field_quoted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(csv: &str) -> (Vec<String>, String) {
        let mut converter = CsvToCopy::new();
        let mut out = Vec::new();
        // Byte by byte: state must survive any split.
        for byte in csv.as_bytes() {
            converter.feed(std::slice::from_ref(byte), &mut out);
        }
        assert!(converter.at_record_start());
        (converter.header.unwrap(), String::from_utf8(out).unwrap())
    }

    #[test]
    fn null_and_empty_string_stay_apart() {
        let (header, text) = convert("id,note\n1,\n2,\"\"\n");
        assert_eq!(header, vec!["id", "note"]);
        assert_eq!(text, "1\t\\N\n2\t\n");
    }

    #[test]
    fn quotes_commas_newlines_and_backslashes_survive() {
        let (_, text) = convert("id,note\n1,\"a,b \"\"q\"\"\nline\\.\n\\.\tx\"\n");
        assert_eq!(text, "1\ta,b \"q\"\\nline\\\\.\\n\\\\.\\tx\n");
    }

    #[test]
    fn quoted_header_names_keep_capitals_and_commas() {
        let (header, text) = convert("\"timeStamp\",\"a,b\"\n2026-01-01,x\n");
        assert_eq!(header, vec!["timeStamp", "a,b"]);
        assert_eq!(text, "2026-01-01\tx\n");
    }
}
