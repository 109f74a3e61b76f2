//! JSON written as Go's `encoding/json` writes it (new-api's task routes are Go): UTF-8 kept
//! raw, `<` `>` `&` U+2028 U+2029 escaped as `\u003c` `\u003e` `\u0026` `\u2028` `\u2029`,
//! other control characters as serde_json writes them (the same short and `\u00XX` forms).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

/// serde_json's compact output with Go's HTML-safe string escapes.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// `value` as Go would encode it.
///
/// ```
/// # use mj_tasks::rest::go_json;
/// let out = String::from_utf8(go_json::to_vec(&"a <b> & c\u{2028}é\n")).unwrap();
/// assert_eq!(out, r#""a \u003cb\u003e \u0026 c\u2028é\n""#);
/// ```
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // Serializing plain structs, strings and numbers into memory cannot fail.
    if value.serialize(&mut ser).is_err() {
        out.clear();
    }
    out
}
