//! The task filter: the whole GraphQL filter set, which the legacy REST parameters map onto.
//!
//! A filter is checked ([`LogFilter::validate`]) before any SQL is built, then turned into
//! one SeaORM condition ([`LogFilter::condition`]; the leaves in `filter_sql`). The leaf
//! types, their limits and their checks serve every log's filter.

use serde::Serialize;

use crate::error::Error;
use crate::service::log::LogFilter;
use crate::service::viewer::Viewer;

/// Most values in one `in` / `notIn` list.
pub const MAX_LIST: usize = 100;
/// Most items in one `and` / `or` list.
pub const MAX_BRANCHES: usize = 10;
/// Deepest nesting of `and` / `or` / `not` (the top-level filter is level 1).
pub const MAX_DEPTH: usize = 3;
/// Longest text pattern, in characters.
pub const MAX_PATTERN: usize = 200;
/// Longest exact-match string value, in characters.
pub const MAX_VALUE: usize = 1000;

/// Comparisons on a number column (`Int` and `Long` alike).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NumFilter {
    pub eq: Option<i64>,
    pub ne: Option<i64>,
    pub gt: Option<i64>,
    pub gte: Option<i64>,
    pub lt: Option<i64>,
    pub lte: Option<i64>,
    pub in_list: Option<Vec<i64>>,
    pub not_in: Option<Vec<i64>>,
}

impl NumFilter {
    /// Whether it names the values it matches (`eq`, `in`).
    pub fn pins(&self) -> bool {
        self.eq.is_some() || self.in_list.is_some()
    }
}

/// Exact comparisons on a string column.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StringFilter {
    pub eq: Option<String>,
    pub ne: Option<String>,
    pub in_list: Option<Vec<String>>,
    pub not_in: Option<Vec<String>>,
}

impl StringFilter {
    /// Whether it names the values it matches (`eq`, `in`).
    pub fn pins(&self) -> bool {
        self.eq.is_some() || self.in_list.is_some()
    }
}

/// Case-insensitive pattern tests on a text column; `%`, `_` and `\` are literal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TextFilter {
    pub contains: Option<String>,
    pub starts_with: Option<String>,
    pub is_empty: Option<bool>,
}

/// Every condition a caller can put on Midjourney tasks; all given parts must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TaskFilter {
    pub id: Option<NumFilter>,
    pub mj_id: Option<StringFilter>,
    pub action: Option<StringFilter>,
    pub status: Option<StringFilter>,
    /// Admin only.
    pub user_id: Option<NumFilter>,
    /// Admin only.
    pub channel_id: Option<NumFilter>,
    pub submit_time: Option<NumFilter>,
    pub start_time: Option<NumFilter>,
    pub finish_time: Option<NumFilter>,
    pub quota: Option<NumFilter>,
    /// `progress = '100%'` (true) or not (false).
    pub finished: Option<bool>,
    /// A non-empty `image_url` (true) or an empty one (false).
    pub has_image: Option<bool>,
    pub prompt: Option<TextFilter>,
    pub fail_reason: Option<TextFilter>,
    pub and: Vec<TaskFilter>,
    pub or: Vec<TaskFilter>,
    pub not: Option<Box<TaskFilter>>,
}

impl LogFilter for TaskFilter {
    type Record = crate::service::TaskRecord;

    fn pins_rows(&self) -> bool {
        self.id.as_ref().is_some_and(NumFilter::pins)
            || self.mj_id.as_ref().is_some_and(StringFilter::pins)
    }

    fn leaves_match(&self, record: &Self::Record) -> bool {
        self.leaves_hold(record)
    }

    fn validate_leaves(&self, viewer: &Viewer) -> Result<(), Error> {
        admin_only(
            viewer,
            &[
                ("userId", self.user_id.is_some()),
                ("channelId", self.channel_id.is_some()),
            ],
        )?;
        check_nums(&[
            ("id", &self.id),
            ("userId", &self.user_id),
            ("channelId", &self.channel_id),
            ("submitTime", &self.submit_time),
            ("startTime", &self.start_time),
            ("finishTime", &self.finish_time),
            ("quota", &self.quota),
        ])?;
        check_strings(&[
            ("mjId", &self.mj_id),
            ("action", &self.action),
            ("status", &self.status),
        ])?;
        check_patterns(&[("prompt", &self.prompt), ("failReason", &self.fail_reason)])
    }

    fn leaves_condition(&self, backend: sea_orm::DbBackend) -> sea_orm::sea_query::Condition {
        self.leaves(backend)
    }

    fn branches(&self) -> (&[Self], &[Self], Option<&Self>) {
        (&self.and, &self.or, self.not.as_deref())
    }

    fn set_and(&mut self, all: Vec<Self>) {
        self.and = all;
    }
}

/// Refuses the parts only admins may use (`(name, given)`) to anyone else.
pub(crate) fn admin_only(viewer: &Viewer, parts: &[(&str, bool)]) -> Result<(), Error> {
    if viewer.is_admin() {
        return Ok(());
    }
    match parts.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err(Error::Forbidden(format!(
            "the {name} filter is for admins only"
        ))),
        None => Ok(()),
    }
}

/// The limits of number comparisons: list lengths.
pub(crate) fn check_nums(filters: &[(&str, &Option<NumFilter>)]) -> Result<(), Error> {
    for (name, f) in filters {
        if let Some(f) = f {
            check_list(name, f.in_list.as_ref().map(Vec::len))?;
            check_list(name, f.not_in.as_ref().map(Vec::len))?;
        }
    }
    Ok(())
}

/// The limits of exact string comparisons: list lengths, value lengths, no NUL.
pub(crate) fn check_strings(filters: &[(&str, &Option<StringFilter>)]) -> Result<(), Error> {
    for (name, f) in filters {
        if let Some(f) = f {
            check_list(name, f.in_list.as_ref().map(Vec::len))?;
            check_list(name, f.not_in.as_ref().map(Vec::len))?;
            let values = f.eq.iter().chain(f.ne.iter());
            let listed = f.in_list.iter().chain(f.not_in.iter()).flatten();
            for v in values.chain(listed) {
                if v.chars().count() > MAX_VALUE {
                    return Err(Error::BadFilter(format!(
                        "{name}: values are at most {MAX_VALUE} characters"
                    )));
                }
                check_text(name, v)?;
            }
        }
    }
    Ok(())
}

/// The limits of text patterns: 1 to [`MAX_PATTERN`] characters, no NUL.
pub(crate) fn check_patterns(filters: &[(&str, &Option<TextFilter>)]) -> Result<(), Error> {
    for (name, f) in filters {
        if let Some(f) = f {
            for pattern in f.contains.iter().chain(f.starts_with.iter()) {
                let n = pattern.chars().count();
                if n == 0 || n > MAX_PATTERN {
                    return Err(Error::BadFilter(format!(
                        "{name}: a text pattern is 1 to {MAX_PATTERN} characters"
                    )));
                }
                check_text(name, pattern)?;
            }
        }
    }
    Ok(())
}

/// No backend stores U+0000 in text the same way (PostgreSQL refuses it), so no filter
/// value may hold one: refused here rather than failing in SQL.
fn check_text(name: &str, value: &str) -> Result<(), Error> {
    if value.contains('\u{0}') {
        return Err(Error::BadFilter(format!(
            "{name}: values may not contain the NUL character"
        )));
    }
    Ok(())
}

fn check_list(name: &str, len: Option<usize>) -> Result<(), Error> {
    match len {
        Some(n) if n > MAX_LIST => Err(Error::BadFilter(format!(
            "{name}: in/notIn take at most {MAX_LIST} values"
        ))),
        _ => Ok(()),
    }
}
