//! Global object ids (Relay's Global Object Identification): an opaque text that
//! names one task of either log anywhere in the API, made from the type name and the row id
//! the way `graphql-relay` makes them (base64 of `MidjourneyTask:42` or `Task:42`).
//!
//! Only canonical ids are read back: an id is accepted when encoding what it decodes to gives
//! the same text, so every task has exactly one id and nothing else names it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::Error;

/// The type name a Midjourney task's id carries.
pub const TYPE_NAME: &str = "MidjourneyTask";
/// The type name a task of the generic log's id carries.
pub const TASK_TYPE_NAME: &str = "Task";

/// Which log a global id names a row of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// `midjourneys`.
    Midjourney,
    /// `tasks`.
    Task,
}

impl NodeKind {
    fn type_name(self) -> &'static str {
        match self {
            NodeKind::Midjourney => TYPE_NAME,
            NodeKind::Task => TASK_TYPE_NAME,
        }
    }
}

/// The longest id read (the longest one made, for `i64::MIN`, has 48 characters).
pub const MAX_NODE_ID_LEN: usize = 64;

/// The global id of the Midjourney task with row id `id`.
pub fn encode(id: i64) -> String {
    encode_of(NodeKind::Midjourney, id)
}

/// The global id of row `id` of the `kind` log.
pub fn encode_of(kind: NodeKind, id: i64) -> String {
    STANDARD.encode(format!("{}:{id}", kind.type_name()))
}

/// The Midjourney row id a global id names, or `BAD_FILTER` when the text is not a
/// Midjourney task's id this API made.
pub fn decode(text: &str) -> Result<i64, Error> {
    match decode_any(text)? {
        (NodeKind::Midjourney, id) => Ok(id),
        _ => Err(Error::BadFilter("not a node id of this API".into())),
    }
}

/// The log and row id a global id names, or `BAD_FILTER` when the text is not an id this
/// API made.
pub fn decode_any(text: &str) -> Result<(NodeKind, i64), Error> {
    let bad = || Error::BadFilter("not a node id of this API".into());
    if text.len() > MAX_NODE_ID_LEN {
        return Err(bad());
    }
    let bytes = STANDARD.decode(text).map_err(|_| bad())?;
    let plain = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let (name, number) = plain.split_once(':').ok_or_else(bad)?;
    let kind = [NodeKind::Midjourney, NodeKind::Task]
        .into_iter()
        .find(|k| k.type_name() == name)
        .ok_or_else(bad)?;
    let id = number.parse::<i64>().map_err(|_| bad())?;
    if encode_of(kind, id) != text {
        return Err(bad());
    }
    Ok((kind, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_id_is_base64_of_the_type_and_row_id() {
        assert_eq!(encode(42), "TWlkam91cm5leVRhc2s6NDI=");
        assert_eq!(decode("TWlkam91cm5leVRhc2s6NDI=").ok(), Some(42));
        assert!(encode(i64::MIN).len() <= MAX_NODE_ID_LEN);
    }

    #[test]
    fn texts_that_are_not_canonical_ids_are_refused() {
        for text in [
            "",
            "42",
            "TWlkam91cm5leVRhc2s6NDI",  // padding missing
            "TWlkam91cm5leVRhc2s6MDQy", // "MidjourneyTask:042"
            "TWlkam91cm5leVRhc2s6KzQy", // "MidjourneyTask:+42"
            "VXNlcjo0Mg==",             // "User:42"
            "TWlkam91cm5leVRhc2s6",     // "MidjourneyTask:"
            "TWlkam91cm5leVRhc2s6OTIyMzM3MjAzNjg1NDc3NTgwOA==", // i64::MAX + 1
        ] {
            assert!(decode(text).is_err(), "{text} was read");
        }
        assert!(decode(&"A".repeat(MAX_NODE_ID_LEN + 4)).is_err());
    }

    proptest! {
        #[test]
        fn every_row_id_comes_back(id in any::<i64>()) {
            prop_assert_eq!(decode(&encode(id)).ok(), Some(id));
            prop_assert_eq!(decode_any(&encode_of(NodeKind::Task, id)).ok(), Some((NodeKind::Task, id)));
            prop_assert!(decode(&encode_of(NodeKind::Task, id)).is_err());
        }

        #[test]
        fn a_text_is_read_only_when_it_is_the_id_it_names(text in "[A-Za-z0-9+/=]{0,70}|\\PC{0,70}") {
            if let Ok((kind, id)) = decode_any(&text) {
                prop_assert_eq!(encode_of(kind, id), text);
            }
        }
    }
}
