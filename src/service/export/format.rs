//! Writing rows as CSV (RFC 4180, header row, optional UTF-8 BOM) or NDJSON, times in a
//! requested IANA time zone, and CSV cells neutralised against spreadsheet formulas.

use chrono::{DateTime, SecondsFormat};
use chrono_tz::Tz;

use crate::error::Error;
use crate::service::export::columns::{Cell, Column};

/// An export's file format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    #[default]
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl Format {
    /// Reads `csv` or `ndjson` (any case).
    pub fn parse(name: &str) -> Result<Format, Error> {
        match name.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" => Ok(Format::Ndjson),
            _ => Err(Error::BadFilter("format is csv or ndjson".into())),
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }

    /// The response's media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

/// The characters a spreadsheet program reads as the start of a formula (OWASP's list).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `text` made safe to open in a spreadsheet program: a cell that begins with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading `'`, which makes it plain text (OWASP's
/// CSV-injection advice). Only CSV is neutralised; NDJSON carries values as stored.
///
/// ```
/// use mj_tasks::service::export::neutralise;
/// assert_eq!(neutralise("=HYPERLINK(\"http://x\")"), "'=HYPERLINK(\"http://x\")");
/// assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
/// assert_eq!(neutralise("a cat"), "a cat");
/// ```
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(FORMULA_STARTS) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

/// An instant (epoch ms) as ISO 8601 in `tz`, with milliseconds and the offset.
pub fn iso(ms: Option<i64>, tz: Tz) -> String {
    ms.and_then(DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&tz)
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        })
        .unwrap_or_default()
}

/// Writes rows in one format and time zone.
pub struct Writer<'c, R: 'static> {
    format: Format,
    tz: Tz,
    columns: Vec<&'c Column<R>>,
}

impl<'c, R> Writer<'c, R> {
    pub fn new(format: Format, tz: Tz, columns: Vec<&'c Column<R>>) -> Self {
        Writer {
            format,
            tz,
            columns,
        }
    }

    /// What comes before the first row: the BOM (when asked, CSV only) and the header.
    pub fn head(&self, bom: bool) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        if self.format != Format::Csv {
            return Ok(out);
        }
        if bom {
            out.extend_from_slice("\u{feff}".as_bytes());
        }
        let mut names = Vec::new();
        for c in &self.columns {
            names.push(c.name.to_owned());
            if c.time {
                names.push(format!("{}_iso", c.name));
            }
        }
        csv_record(&mut out, names.iter().map(String::as_str))?;
        Ok(out)
    }

    /// `records` written out, one line each.
    pub fn rows(&self, records: &[R]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(records.len() * 256);
        match self.format {
            Format::Csv => {
                let mut writer = csv_writer(&mut out);
                let mut numbers = itoa::Buffer::new();
                let field = |writer: &mut csv::Writer<&mut Vec<u8>>, bytes: &[u8]| {
                    writer.write_field(bytes).map_err(|_| Error::Internal)
                };
                for record in records {
                    for c in &self.columns {
                        match (c.get)(record) {
                            Cell::Int(n) => field(&mut writer, numbers.format(n).as_bytes())?,
                            Cell::Text(t) => field(&mut writer, neutralise(t).as_bytes())?,
                            Cell::Time { stored, ms } => {
                                field(&mut writer, numbers.format(stored).as_bytes())?;
                                field(&mut writer, iso(ms, self.tz).as_bytes())?;
                            }
                        }
                    }
                    writer
                        .write_record(std::iter::empty::<&[u8]>())
                        .map_err(|_| Error::Internal)?;
                }
                writer.flush().map_err(|_| Error::Internal)?;
            }
            Format::Ndjson => {
                for record in records {
                    self.json_line(record, &mut out);
                }
            }
        }
        Ok(out)
    }

    fn json_line(&self, record: &R, out: &mut Vec<u8>) {
        let mut first = true;
        let mut field = |out: &mut Vec<u8>, name: &str, value: serde_json::Value| {
            out.push(if first { b'{' } else { b',' });
            first = false;
            // Writing a string or a number into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, name);
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, &value);
        };
        for c in &self.columns {
            match (c.get)(record) {
                Cell::Int(n) => field(out, c.name, n.into()),
                Cell::Text(t) => field(out, c.name, t.into()),
                Cell::Time { stored, ms } => {
                    field(out, c.name, stored.into());
                    field(out, &format!("{}_iso", c.name), iso(ms, self.tz).into());
                }
            }
        }
        if first {
            out.push(b'{');
        }
        out.extend_from_slice(b"}\n");
    }
}

fn csv_writer(out: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out)
}

/// Appends one CSV record (RFC 4180: fields quoted when they need it, CRLF line ends).
fn csv_record<'a>(out: &mut Vec<u8>, fields: impl Iterator<Item = &'a str>) -> Result<(), Error> {
    let mut writer = csv_writer(out);
    writer.write_record(fields).map_err(|_| Error::Internal)?;
    writer.flush().map_err(|_| Error::Internal)
}
