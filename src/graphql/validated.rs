//! Requests that passed async-graphql's full validation once, so that the same request (the
//! same document, operation name and variables) is not validated again.
//!
//! Validation is a pure function of the schema, the document, the operation's name and the
//! variables' values. A request that ran under full validation (`ValidationMode::Strict`)
//! and answered without any error is remembered by a keyed hash of those three; the next
//! identical request runs with `ValidationMode::Fast`, which still measures complexity and
//! depth against the same limits (and checks fragment cycles), so it is refused exactly when
//! the first one would have been. Anything else — a new document, other variables, a request
//! whose answer held an error — is validated in full as before.
//!
//! The hash is SipHash with this process's random keys (`RandomState`), so a client cannot
//! craft a request that collides with another's; the set is bounded ([`MAX_VALIDATED`]) and
//! starts over when full.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Mutex, PoisonError};

use async_graphql::Request;

/// Most requests remembered (8 bytes each).
pub const MAX_VALIDATED: usize = 4_096;

/// The requests that passed full validation, by keyed hash.
#[derive(Debug, Default)]
pub(super) struct Validated {
    keys: RandomState,
    seen: Mutex<HashSet<u64>>,
}

/// Feeds what is written into a hasher (the variables' JSON, without building the text).
struct HashWriter<'a, H: Hasher>(&'a mut H);

impl<H: Hasher> std::io::Write for HashWriter<'_, H> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Validated {
    /// The key of `request` (its document's text, operation name and variables); `None`
    /// for one whose variables cannot be written as JSON, which is never remembered.
    pub(super) fn key(&self, request: &Request) -> Option<u64> {
        let mut h = self.keys.build_hasher();
        h.write(request.query.as_bytes());
        h.write_u8(0xff);
        match &request.operation_name {
            Some(name) => {
                h.write_u8(1);
                h.write(name.as_bytes());
                h.write_u8(0xff);
            }
            None => h.write_u8(0),
        }
        serde_json::to_writer(HashWriter(&mut h), &request.variables).ok()?;
        Some(h.finish())
    }

    /// Whether the request with `key` passed full validation before.
    pub(super) fn contains(&self, key: u64) -> bool {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.contains(&key)
    }

    /// Remembers that the request with `key` passed full validation.
    pub(super) fn insert(&self, key: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MAX_VALIDATED {
            seen.clear();
        }
        seen.insert(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, name: Option<&str>, variables: serde_json::Value) -> Request {
        let mut r = Request::new(query).variables(async_graphql::Variables::from_json(variables));
        if let Some(name) = name {
            r = r.operation_name(name);
        }
        r
    }

    #[test]
    fn the_key_tells_apart_documents_names_and_variables() {
        let v = Validated::default();
        let base = v.key(&request("{ a }", None, serde_json::json!({})));
        assert!(base.is_some());
        assert_eq!(base, v.key(&request("{ a }", None, serde_json::json!({}))));
        for other in [
            request("{ b }", None, serde_json::json!({})),
            request("{ a }", Some("A"), serde_json::json!({})),
            request("{ a }", None, serde_json::json!({ "x": 1 })),
        ] {
            assert_ne!(base, v.key(&other), "{other:?}");
        }
        // The name and the document's text do not run into each other.
        assert_ne!(
            v.key(&request("query A { a }", Some("B"), serde_json::json!({}))),
            v.key(&request("query A { a }B", None, serde_json::json!({})))
        );
        assert_ne!(
            v.key(&request("{ a }", None, serde_json::json!({ "x": 1 }))),
            v.key(&request("{ a }", None, serde_json::json!({ "x": 2 })))
        );
    }

    #[test]
    fn remembered_keys_are_found_and_the_set_stays_bounded() {
        let v = Validated::default();
        assert!(!v.contains(7));
        v.insert(7);
        assert!(v.contains(7));
        for k in 0..(MAX_VALIDATED as u64 * 2) {
            v.insert(1_000 + k);
        }
        let len = v.seen.lock().map(|s| s.len()).unwrap_or_default();
        assert!(len <= MAX_VALIDATED, "{len}");
    }
}
