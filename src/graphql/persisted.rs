//! Persisted queries: Apollo's automatic persisted queries (a client sends the SHA-256 of its
//! document first and the document only when the server does not know it yet), and a
//! trusted-documents mode (`--trusted-documents FILE`) in which only the listed documents run
//! at all. Both are decided on the hash, before any parsing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use async_graphql::Request;
use sha2::{Digest, Sha256};

/// Most bytes of documents the automatic cache keeps; the oldest go first.
const MAX_CACHED_BYTES: usize = 4 * 1024 * 1024;

/// Why a request's document could not be had.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: &'static str,
}

const NOT_FOUND: Refusal = Refusal {
    code: "PERSISTED_QUERY_NOT_FOUND",
    message: "PersistedQueryNotFound",
};
const NOT_ALLOWED: Refusal = Refusal {
    code: "PERSISTED_QUERY_NOT_ALLOWED",
    message: "only trusted documents run on this server: send the hash of a listed document",
};
const MISMATCH: Refusal = Refusal {
    code: "PERSISTED_QUERY_HASH_MISMATCH",
    message: "the sha256Hash does not match the query",
};
const BAD: Refusal = Refusal {
    code: "BAD_REQUEST",
    message: "extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": \"<64 hex digits>\"}",
};
const EMPTY: Refusal = Refusal {
    code: "BAD_REQUEST",
    message: "a GraphQL request needs a non-empty \"query\"",
};

#[derive(Debug, Default)]
struct Cache {
    documents: HashMap<String, String>,
    order: VecDeque<String>,
    bytes: usize,
}

/// The documents this instance knows by hash.
#[derive(Debug, Default)]
pub struct Persisted {
    cache: Mutex<Cache>,
    /// When set, the only documents that run.
    trusted: Option<HashMap<String, String>>,
}

/// The SHA-256 of `document`, in lowercase hex (Apollo's `sha256Hash`).
pub fn hash(document: &str) -> String {
    Sha256::digest(document.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Persisted {
    /// Trusted-documents mode from a JSON map of hash → document. A hash that is not the document's SHA-256 is refused, naming it.
    pub fn trusted(json: &str) -> Result<Persisted, String> {
        let map: HashMap<String, String> = serde_json::from_str(json)
            .map_err(|e| format!("a JSON object of sha256 hash → document: {e}"))?;
        if let Some((h, _)) = map.iter().find(|(h, d)| hash(d) != h.to_ascii_lowercase()) {
            return Err(format!("{h} is not the SHA-256 of its document"));
        }
        let map = map
            .into_iter()
            .map(|(h, d)| (h.to_ascii_lowercase(), d))
            .collect();
        Ok(Persisted {
            cache: Mutex::default(),
            trusted: Some(map),
        })
    }

    /// Gives `request` its document: from the trusted list or the cache when it sends a hash alone. A document sent with its hash (automatic mode) is checked against it and its hash returned, for the caller to [`Persisted::remember`] once it knows who sent it. In trusted mode a document that is not listed is refused, hash or not.
    pub fn resolve(&self, request: &mut Request) -> Result<Option<String>, Refusal> {
        let sent = match request.extensions.get("persistedQuery") {
            None => None,
            Some(v) => {
                let v = serde_json::to_value(v).map_err(|_| BAD)?;
                let hash = v["sha256Hash"].as_str().unwrap_or_default();
                let valid = v["version"] == 1
                    && hash.len() == 64
                    && hash.bytes().all(|b| b.is_ascii_hexdigit());
                if !valid {
                    return Err(BAD);
                }
                Some(hash.to_ascii_lowercase())
            }
        };
        let has_query = !request.query.trim().is_empty();
        if let Some(trusted) = &self.trusted {
            let key = match (&sent, has_query) {
                (Some(h), _) => h.clone(),
                (None, true) => hash(&request.query),
                (None, false) => return Err(EMPTY),
            };
            let document =
                trusted
                    .get(&key)
                    .ok_or(if has_query { NOT_ALLOWED } else { NOT_FOUND })?;
            if has_query && *document != request.query {
                return Err(NOT_ALLOWED);
            }
            request.query = document.clone();
            return Ok(None);
        }
        match (sent, has_query) {
            (None, true) => Ok(None),
            (None, false) => Err(EMPTY),
            (Some(h), false) => {
                let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                request.query = cache.documents.get(&h).cloned().ok_or(NOT_FOUND)?;
                Ok(None)
            }
            (Some(h), true) => {
                if hash(&request.query) != h {
                    return Err(MISMATCH);
                }
                Ok(Some(h))
            }
        }
    }

    /// Remembers `document` under `hash` (automatic mode), the oldest going first.
    pub fn remember(&self, hash: String, document: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.documents.contains_key(&hash) || document.len() > MAX_CACHED_BYTES / 16 {
            return;
        }
        cache.bytes += document.len();
        cache.order.push_back(hash.clone());
        cache.documents.insert(hash, document.to_owned());
        while cache.bytes > MAX_CACHED_BYTES {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            if let Some(d) = cache.documents.remove(&oldest) {
                cache.bytes -= d.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hash(query: &str, hash: &str) -> Request {
        let mut r = Request::new(query);
        r.extensions.insert(
            "persistedQuery".into(),
            async_graphql::Value::from_json(serde_json::json!({"version": 1, "sha256Hash": hash}))
                .unwrap_or_default(),
        );
        r
    }

    #[test]
    fn automatic_hash_first_then_the_document_then_the_hash_alone() {
        let p = Persisted::default();
        let doc = "{ __typename }";
        let h = hash(doc);
        assert_eq!(p.resolve(&mut with_hash("", &h)), Err(NOT_FOUND));
        assert_eq!(p.resolve(&mut with_hash(doc, &h)), Ok(Some(h.clone())));
        assert_eq!(
            p.resolve(&mut with_hash("", &h)),
            Err(NOT_FOUND),
            "known only once remembered"
        );
        p.remember(h.clone(), doc);
        let mut again = with_hash("", &h);
        assert_eq!(p.resolve(&mut again), Ok(None));
        assert_eq!(again.query, doc);
        assert_eq!(p.resolve(&mut with_hash("{ x }", &h)), Err(MISMATCH));
    }

    #[test]
    fn trusted_documents_only() {
        let doc = "{ __typename }";
        let h = hash(doc);
        let p = Persisted::trusted(&serde_json::json!({ h.clone(): doc }).to_string())
            .unwrap_or_default();
        let mut by_hash = with_hash("", &h);
        assert_eq!(p.resolve(&mut by_hash), Ok(None));
        assert_eq!(by_hash.query, doc);
        assert_eq!(p.resolve(&mut Request::new(doc)), Ok(None));
        assert_eq!(p.resolve(&mut Request::new("{ other }")), Err(NOT_ALLOWED));
        assert_eq!(p.resolve(&mut with_hash("", &hash("x"))), Err(NOT_FOUND));
        assert!(Persisted::trusted(r#"{"00": "{ a }"}"#).is_err());
    }
}
