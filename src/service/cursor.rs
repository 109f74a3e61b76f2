//! Opaque keyset cursors: the sort-key values of a row plus a fingerprint of the order and
//! filter they were made under, so a cursor reused with another order or filter is refused
//! instead of skipping or repeating rows.

use sea_orm::sea_query::{Condition, ExprTrait};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::service::log::SortField;
use crate::service::order::{Direction, KeyOrder};
use crate::service::page::MAX_CURSOR_LEN;

#[derive(Serialize, Deserialize)]
struct Payload {
    /// Fingerprint of the order and filter.
    f: String,
    /// The row's sort-key values, one per key of the effective order.
    k: Vec<i64>,
}

/// A stable fingerprint (FNV-1a, 64-bit) of the order and filter: the same in every
/// instance and across restarts, unlike std's randomly keyed hasher.
pub fn fingerprint<F: Serialize, T: Serialize>(order: &[KeyOrder<F>], filter: &T) -> String {
    let text = serde_json::to_string(&(order, filter)).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The cursor of `row` under `order` and the given fingerprint.
pub fn encode<F: SortField>(row: &F::Record, order: &[KeyOrder<F>], fp: &str) -> String {
    let payload = Payload {
        f: fp.to_owned(),
        k: order.iter().map(|k| k.field.value(row)).collect(),
    };
    let json = serde_json::to_string(&payload).unwrap_or_default();
    json.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The key values a cursor holds, checked against the current order and fingerprint.
pub fn decode<F>(cursor: &str, order: &[KeyOrder<F>], fp: &str) -> Result<Vec<i64>, Error> {
    let bad = || Error::BadFilter("malformed cursor".into());
    if cursor.len() > MAX_CURSOR_LEN || !cursor.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let payload: Payload = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if payload.f != fp || payload.k.len() != order.len() {
        return Err(Error::CursorMismatch);
    }
    Ok(payload.k)
}

/// Rows strictly after (`after = true`) or before the key `values` in `order`:
/// `(k1 > v1) OR (k1 = v1 AND k2 > v2) OR …`, each `>` flipped for descending keys.
pub fn beyond<F: SortField>(order: &[KeyOrder<F>], values: &[i64], after: bool) -> Condition {
    let mut any = Condition::any();
    for i in 0..order.len() {
        let mut branch = Condition::all();
        for (key, v) in order.iter().zip(values).take(i) {
            branch = branch.add(key.field.expr().eq(*v));
        }
        let key = order[i];
        let v = values[i];
        let ascending = (key.direction == Direction::Asc) == after;
        branch = branch.add(if ascending {
            key.field.expr().gt(v)
        } else {
            key.field.expr().lt(v)
        });
        any = any.add(branch);
    }
    any
}
