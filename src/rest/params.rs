//! Reading the legacy query string into the service's filter and page.

use crate::error::Error;
use crate::service::{NumFilter, OffsetPage, StringFilter, TaskFilter};

/// Longest accepted query string, in bytes.
pub(super) const MAX_QUERY: usize = 8 * 1024;

/// The parsed legacy parameters.
pub struct LegacyParams {
    pub filter: TaskFilter,
    pub page: OffsetPage,
}

/// The value of `name`'s first occurrence, exactly as sent (as the legacy gateway reads a
/// repeated parameter); an empty value means "not given".
fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A lenient integer: anything unparsable is treated as absent.
fn lenient(pairs: &[(String, String)], name: &str) -> Option<i64> {
    get(pairs, name).and_then(|v| v.parse().ok())
}

/// A strict integer: present and non-empty but not an integer is a 400 naming `name`.
fn strict(pairs: &[(String, String)], name: &str) -> Result<Option<i64>, Error> {
    get(pairs, name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| Error::BadFilter(format!("invalid {name}: {v:?} is not an integer")))
        })
        .transpose()
}

/// The query string's name/value pairs, URL-decoded (`+` is a space), in order.
pub(super) fn pairs(query: &str) -> Result<Vec<(String, String)>, Error> {
    serde_urlencoded::from_str(query).map_err(|_| Error::BadFilter("malformed query string".into()))
}

/// Parses `query`; `admin` enables `channel_id` (ignored on `/self`).
pub fn parse(query: Option<&str>, admin: bool) -> Result<LegacyParams, Error> {
    let query = query.unwrap_or("");
    if query.len() > MAX_QUERY {
        return Err(Error::BadFilter(format!(
            "query string longer than {MAX_QUERY} bytes"
        )));
    }
    let pairs = pairs(query)?;

    // page_size, then ps, then size, each skipped when missing, empty or 0.
    let size = ["page_size", "ps", "size"]
        .iter()
        .map(|n| (get(&pairs, n), lenient(&pairs, n)))
        .find(|(raw, n)| raw.is_some() && *n != Some(0))
        .and_then(|(_, n)| n);
    let page = OffsetPage::legacy(lenient(&pairs, "p"), size);

    let mut filter = TaskFilter::default();
    if let Some(mj_id) = get(&pairs, "mj_id") {
        filter.mj_id = Some(StringFilter {
            eq: Some(mj_id.to_owned()),
            ..Default::default()
        });
    }
    if admin && let Some(channel) = strict(&pairs, "channel_id")? {
        filter.channel_id = Some(NumFilter {
            eq: Some(channel),
            ..Default::default()
        });
    }
    let start = strict(&pairs, "start_timestamp")?;
    let end = strict(&pairs, "end_timestamp")?;
    if start.is_some() || end.is_some() {
        filter.submit_time = Some(NumFilter {
            gte: start,
            lte: end,
            ..Default::default()
        });
    }
    Ok(LegacyParams { filter, page })
}
