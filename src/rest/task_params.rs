//! Reading the task routes' query string as new-api's handlers do (Go's `strconv.Atoi`, and
//! `ParseInt` with its error ignored), into the task log's filter and page.

use crate::error::Error;
use crate::service::page::TASK_LOG_LEGACY_PAGE_SIZE;
use crate::service::{NumFilter, OffsetPage, PlatformTaskFilter, StringFilter};

use super::params::{MAX_QUERY, pairs};

/// The parsed parameters.
pub struct TaskParams {
    pub filter: PlatformTaskFilter,
    pub page: OffsetPage,
}

/// The value of `name`'s first occurrence; `""` when missing (as Go's `c.Query`).
fn first<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Whether `v` has Go's integer syntax: an optional sign, then one or more ASCII digits.
fn integer_syntax(v: &str) -> bool {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `strconv.Atoi`: `None` for any syntax error or a value outside 64 bits.
///
/// ```
/// # use mj_tasks::rest::task_params::atoi;
/// assert_eq!(atoi("+2"), Some(2));
/// assert_eq!(atoi(" 2"), None);
/// assert_eq!(atoi("99999999999999999999"), None);
/// ```
pub fn atoi(v: &str) -> Option<i64> {
    if !integer_syntax(v) {
        return None;
    }
    v.parse().ok()
}

/// `strconv.ParseInt(v, 10, 64)` with its error ignored: 0 for a syntax error, the nearest
/// bound for a value outside 64 bits.
///
/// ```
/// # use mj_tasks::rest::task_params::parse_int_lenient;
/// assert_eq!(parse_int_lenient("NaN"), 0);
/// assert_eq!(parse_int_lenient("-99999999999999999999"), i64::MIN);
/// ```
pub fn parse_int_lenient(v: &str) -> i64 {
    if !integer_syntax(v) {
        return 0;
    }
    v.parse().unwrap_or(if v.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    })
}

fn equals(value: &str) -> Option<StringFilter> {
    (!value.is_empty()).then(|| StringFilter {
        eq: Some(value.to_owned()),
        ..Default::default()
    })
}

/// Parses `query`; `admin` enables `channel_id` (not read at all on `/self`).
pub fn parse(query: Option<&str>, admin: bool) -> Result<TaskParams, Error> {
    let query = query.unwrap_or("");
    if query.len() > MAX_QUERY {
        return Err(Error::BadFilter(format!(
            "query string longer than {MAX_QUERY} bytes"
        )));
    }
    let pairs = pairs(query)?;
    let get = |name| first(&pairs, name);

    let page = atoi(get("p")).unwrap_or(1);
    let mut size = atoi(get("page_size")).unwrap_or(0);
    for name in ["ps", "size"] {
        if size == 0 {
            size = parse_int_lenient(get(name));
        }
    }
    let page = OffsetPage::legacy_sized(Some(page), Some(size), TASK_LOG_LEGACY_PAGE_SIZE);

    let mut filter = PlatformTaskFilter {
        platform: equals(get("platform")),
        task_id: equals(get("task_id")),
        status: equals(get("status")),
        action: equals(get("action")),
        legacy_nulls: true,
        ..Default::default()
    };
    let channel = get("channel_id");
    if admin && !channel.is_empty() {
        let n = atoi(channel)
            .ok_or_else(|| Error::BadFilter("invalid channel_id: expected an integer".into()))?;
        filter.channel_id = Some(NumFilter {
            eq: Some(n),
            ..Default::default()
        });
    }
    let start = parse_int_lenient(get("start_timestamp"));
    let end = parse_int_lenient(get("end_timestamp"));
    if start != 0 || end != 0 {
        filter.submit_time = Some(NumFilter {
            gte: (start != 0).then_some(start),
            lte: (end != 0).then_some(end),
            ..Default::default()
        });
    }
    Ok(TaskParams { filter, page })
}
