//! Reading the task log's JSON columns as new-api does: `properties` decoded into its three
//! strings, `result_url` the only value read from `private_data`, `data` served as stored
//! but compacted. Decoding follows Go's `encoding/json` into a struct: keys match
//! case-insensitively, the last match wins, a JSON `null` leaves a field as it was.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

/// The three strings new-api keeps in `properties`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Properties {
    /// The task's text input (prompt, lyrics, …).
    pub input: String,
    /// The model name sent upstream.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub upstream_model_name: String,
    /// The model name the client asked for.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub origin_model_name: String,
}

/// Whether `key` equals `name` (lowercase ASCII) under Go's case folding of struct field
/// names (`ſ` folds to `s`, the Kelvin sign to `k`).
fn folds_to(key: &str, name: &str) -> bool {
    let mut folded = key.chars().map(|c| match c {
        'ſ' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    });
    let mut want = name.chars();
    loop {
        match (folded.next(), want.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// An object's key, borrowed from the text when it has no escapes (no copy per key).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Decodes the object `text` into the string fields `names` (lowercase), in document order:
/// the last matching key wins, `null` keeps the value before it. `None` when the text is
/// not JSON, or one of the fields holds something other than a string or `null`; a
/// non-object top level (Go reports it as an error too) gives `None` as well, and the JSON
/// literal `null` gives the fields unset.
fn decode_strings<const N: usize>(text: &str, names: [&'static str; N]) -> Option<[String; N]> {
    struct Fields<const N: usize>([&'static str; N]);

    impl<'de, const N: usize> Visitor<'de> for Fields<N> {
        type Value = [String; N];

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(std::array::from_fn(|_| String::new()))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out: [String; N] = std::array::from_fn(|_| String::new());
            while let Some(Key(key)) = map.next_key::<Key>()? {
                match self.0.iter().position(|name| folds_to(&key, name)) {
                    Some(i) => {
                        if let Some(value) = map.next_value::<Option<String>>()? {
                            out[i] = value;
                        }
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(out)
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    let fields = de::Deserializer::deserialize_any(&mut de, Fields(names)).ok()?;
    de.end().ok()?;
    Some(fields)
}

/// `properties` as new-api rebuilds it; anything it cannot decode gives the empty value.
///
/// ```
/// use mj_tasks::service::task_log::json::properties;
/// let p = properties(r#"{"origin_model_name":"kling-v1","Input":"a cat","seconds":"5"}"#);
/// assert_eq!((p.input.as_str(), p.origin_model_name.as_str()), ("a cat", "kling-v1"));
/// assert_eq!(properties(r#"{"input":5}"#), Default::default());
/// ```
pub fn properties(text: &str) -> Properties {
    match decode_strings(text, ["input", "upstream_model_name", "origin_model_name"]) {
        Some([input, upstream_model_name, origin_model_name]) => Properties {
            input,
            upstream_model_name,
            origin_model_name,
        },
        None => Properties::default(),
    }
}

/// The `result_url` kept in `private_data`, when it is a non-empty string. Nothing else of
/// that column is ever read: it holds upstream keys.
pub fn private_result_url(private_data: &str) -> Option<String> {
    let [url] = decode_strings(private_data, ["result_url"])?;
    (!url.is_empty()).then_some(url)
}

/// Go's escape of the character starting at `bytes[i]` inside a JSON string, and that
/// character's length in bytes: `<` `>` `&` U+2028 U+2029 (`encoding/json`'s HTML-safe
/// escapes); `None` for any other byte. In UTF-8 these ASCII bytes never occur inside a
/// longer character, and `E2 80 A8`/`E2 80 A9` are exactly U+2028/U+2029.
///
/// ```
/// use mj_tasks::service::task_log::json::go_escape_at;
/// assert_eq!(go_escape_at(b"a<", 1), Some(("\\u003c", 1)));
/// assert_eq!(go_escape_at("\u{2029}".as_bytes(), 0), Some(("\\u2029", 3)));
/// assert_eq!(go_escape_at("é".as_bytes(), 0), None);
/// ```
#[inline]
pub fn go_escape_at(bytes: &[u8], i: usize) -> Option<(&'static str, usize)> {
    match bytes[i] {
        b'<' => Some(("\\u003c", 1)),
        b'>' => Some(("\\u003e", 1)),
        b'&' => Some(("\\u0026", 1)),
        0xE2 if bytes.get(i + 1) == Some(&0x80) => match bytes.get(i + 2) {
            Some(0xA8) => Some(("\\u2028", 3)),
            Some(0xA9) => Some(("\\u2029", 3)),
            _ => None,
        },
        _ => None,
    }
}

/// `data` as served: the stored JSON text without whitespace outside strings, with `<`,
/// `>`, `&`, U+2028 and U+2029 escaped as Go's encoder does; everything else (key order,
/// duplicate keys, number spelling, escapes) exactly as stored. `None` (served as `null`)
/// for an empty or unparsable value.
///
/// ```
/// use mj_tasks::service::task_log::json::compact_data;
/// assert_eq!(compact_data("{ \"a\": 1.50,\n \"b\": \"x <y>\" }").as_deref(),
///            Some(r#"{"a":1.50,"b":"x \u003cy\u003e"}"#));
/// assert_eq!(compact_data("  "), None);
/// ```
pub fn compact_data(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return None;
    }
    // Valid JSON (numbers are scanned, not converted: `1e400` stays valid, as in Go).
    let mut de = serde_json::Deserializer::from_str(text);
    IgnoredAny::deserialize(&mut de).ok()?;
    de.end().ok()?;
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // Every byte the scan stops at is ASCII or starts U+2028/U+2029, so each run copied
    // ends on a character boundary.
    let (mut run, mut i, mut in_string) = (0, 0, false);
    while i < bytes.len() {
        let skip = match (in_string, bytes[i]) {
            (false, b' ' | b'\t' | b'\n' | b'\r') => Some(("", 1)),
            (false, b'"') => {
                in_string = true;
                None
            }
            (false, _) => None,
            // A backslash and the ASCII character it escapes (the text is valid JSON).
            (true, b'\\') => {
                i += 2;
                continue;
            }
            (true, b'"') => {
                in_string = false;
                None
            }
            (true, _) => go_escape_at(bytes, i),
        };
        match skip {
            Some((escape, len)) => {
                out.push_str(&text[run..i]);
                out.push_str(escape);
                i += len;
                run = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&text[run..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The model: compaction character by character (the first implementation).
    fn compact_by_chars(text: &str) -> Option<String> {
        if text.trim().is_empty() {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        IgnoredAny::deserialize(&mut de).ok()?;
        de.end().ok()?;
        let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
        for c in text.chars() {
            if !in_string {
                match c {
                    ' ' | '\t' | '\n' | '\r' => {}
                    '"' => {
                        in_string = true;
                        out.push(c);
                    }
                    c => out.push(c),
                }
            } else if escaped {
                escaped = false;
                out.push(c);
            } else {
                match c {
                    '\\' => {
                        escaped = true;
                        out.push(c);
                    }
                    '"' => {
                        in_string = false;
                        out.push(c);
                    }
                    '<' => out.push_str("\\u003c"),
                    '>' => out.push_str("\\u003e"),
                    '&' => out.push_str("\\u0026"),
                    '\u{2028}' => out.push_str("\\u2028"),
                    '\u{2029}' => out.push_str("\\u2029"),
                    c => out.push(c),
                }
            }
        }
        Some(out)
    }

    /// Text made mostly of what compaction and Go's escapes look at.
    fn jsonish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("\\\"".to_owned()),
            Just("\\u2028".to_owned()),
            Just(" ".to_owned()),
            Just("\n\t\r".to_owned()),
            Just("<>&".to_owned()),
            Just("\u{2028}\u{2029}\u{2027}\u{202A}".to_owned()),
            Just("{\"k\": [1, 2.5e3, null, true]}".to_owned()),
            Just(":,[]{}".to_owned()),
            "\\PC{0,4}",
        ];
        prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn compaction_matches_the_model_on_any_text(text in jsonish()) {
            prop_assert_eq!(compact_data(&text), compact_by_chars(&text));
        }

        #[test]
        fn compaction_matches_the_model_on_valid_json(
            strings in prop::collection::vec(jsonish(), 0..6),
            pretty in any::<bool>(),
        ) {
            let map: std::collections::BTreeMap<String, Vec<String>> =
                strings.iter().map(|s| (s.clone(), strings.clone())).collect();
            let text = if pretty {
                serde_json::to_string_pretty(&map)
            } else {
                serde_json::to_string(&map)
            }
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let compact = compact_data(&text);
            prop_assert!(compact.is_some());
            prop_assert_eq!(compact, compact_by_chars(&text));
        }
    }

    #[test]
    fn properties_follow_go_decoding() {
        let p = properties(r#"{"INPUT":"a","input":null,"Origin_Model_Name":"m","x":[1]}"#);
        assert_eq!(p.input, "a");
        assert_eq!(p.origin_model_name, "m");
        assert_eq!(properties("[1]"), Properties::default());
        assert_eq!(properties("null"), Properties::default());
        assert_eq!(properties("{bad"), Properties::default());
        assert_eq!(properties(r#"{"input":"a","input":"b"}"#).input, "b");
        assert_eq!(properties("{\"ınput\":\"no\"}").input, "");
        assert_eq!(properties("{\"inpuſ\":\"x\"}").input, "");
        assert_eq!(properties("{\"ſeconds\":1,\"input\":\"y\"}").input, "y");
        // A key with an escape is read like any other.
        assert_eq!(properties(r#"{"\u0069nput":"esc"}"#).input, "esc");
    }

    #[test]
    fn result_url_is_the_only_private_value_read() {
        let private = r#"{"key":"AIza-secret","result_url":"https://v/1.mp4"}"#;
        assert_eq!(
            private_result_url(private).as_deref(),
            Some("https://v/1.mp4")
        );
        assert_eq!(private_result_url(r#"{"result_url":5}"#), None);
        assert_eq!(private_result_url(r#"{"result_url":""}"#), None);
        assert_eq!(private_result_url("not json"), None);
    }

    #[test]
    fn data_is_compacted_not_rewritten() {
        assert_eq!(
            compact_data("{ \"code\": 0,\n  \"note\": \"caf\\u00e9 a b\", \"code\": 1e3 }")
                .as_deref(),
            Some(r#"{"code":0,"note":"caf\u00e9 a b","code":1e3}"#)
        );
        assert_eq!(
            compact_data("\"a\\\" <&> \u{2028}\"").as_deref(),
            Some(r#""a\" \u003c\u0026\u003e \u2028""#)
        );
        assert_eq!(compact_data("{bad"), None);
        assert_eq!(compact_data("[1e400]").as_deref(), Some("[1e400]"));
    }
}
