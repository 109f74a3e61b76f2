//! Reading the task log's JSON columns as new-api does: `properties` decoded into its three
//! strings, `result_url` the only value read from `private_data`, `data` served as stored
//! but compacted. Decoding follows Go's `encoding/json` into a struct: keys match
//! case-insensitively, the last match wins, a JSON `null` leaves a field as it was.

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
            while let Some(key) = map.next_key::<String>()? {
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
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
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
            continue;
        }
        if escaped {
            escaped = false;
            out.push(c);
            continue;
        }
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
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
