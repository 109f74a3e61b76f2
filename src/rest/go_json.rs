//! JSON written as Go's `encoding/json` writes it (new-api's task routes are Go): UTF-8 kept
//! raw, `<` `>` `&` U+2028 U+2029 escaped as `\u003c` `\u003e` `\u0026` `\u2028` `\u2029`,
//! other control characters as serde_json writes them (the same short and `\u00XX` forms).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

use crate::service::task_log::json::go_escape_at;

/// serde_json's compact output with Go's HTML-safe string escapes.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let (mut run, mut i) = (0, 0);
        while i < bytes.len() {
            match go_escape_at(bytes, i) {
                Some((escape, len)) => {
                    writer.write_all(&bytes[run..i])?;
                    writer.write_all(escape.as_bytes())?;
                    i += len;
                    run = i;
                }
                None => i += 1,
            }
        }
        writer.write_all(&bytes[run..])
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// Go's output is serde_json's with the five HTML-unsafe characters escaped.
        #[test]
        fn strings_are_written_as_go_writes_them(
            chars in prop::collection::vec(
                prop_oneof![
                    prop::sample::select(vec![
                        '<', '>', '&', '\u{2028}', '\u{2029}', '\u{2027}', '\u{202A}', '\u{E2}',
                        '"', '\\', '\n', '\u{1}', 'a', 'é',
                    ]),
                    any::<char>(),
                ],
                0..40,
            )
        ) {
            let text: String = chars.into_iter().collect();
            let model = serde_json::to_string(&text)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026")
                .replace('\u{2028}', "\\u2028")
                .replace('\u{2029}', "\\u2029");
            prop_assert_eq!(String::from_utf8(super::to_vec(&text)).ok(), Some(model));
        }
    }
}
