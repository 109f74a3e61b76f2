//! GraphQL filter inputs and their translation to the service's filter.

use async_graphql::InputObject;

use crate::error::Error;
use crate::graphql::scalars::Long;
use crate::service::filter::MAX_DEPTH;
use crate::service::{
    NumFilter, StringFilter as SvcStringFilter, TaskFilter, TextFilter as SvcTextFilter,
};

/// Comparisons on an `Int` field. All given operators must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct IntFilter {
    /// Equal to.
    pub eq: Option<i64>,
    /// Not equal to.
    pub ne: Option<i64>,
    /// Greater than.
    pub gt: Option<i64>,
    /// Greater than or equal to.
    pub gte: Option<i64>,
    /// Less than.
    pub lt: Option<i64>,
    /// Less than or equal to.
    pub lte: Option<i64>,
    /// One of these values (at most 100).
    #[graphql(name = "in")]
    pub in_list: Option<Vec<i64>>,
    /// None of these values (at most 100).
    pub not_in: Option<Vec<i64>>,
}

/// Comparisons on a `Long` field (epoch times). All given operators must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct LongFilter {
    /// Equal to.
    pub eq: Option<Long>,
    /// Greater than.
    pub gt: Option<Long>,
    /// Greater than or equal to.
    pub gte: Option<Long>,
    /// Less than.
    pub lt: Option<Long>,
    /// Less than or equal to.
    pub lte: Option<Long>,
}

/// Exact comparisons on a string field (no pattern matching). All given operators must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct StringFilter {
    /// Equal to.
    pub eq: Option<String>,
    /// Not equal to.
    pub ne: Option<String>,
    /// One of these values (at most 100).
    #[graphql(name = "in")]
    pub in_list: Option<Vec<String>>,
    /// None of these values (at most 100).
    pub not_in: Option<Vec<String>>,
}

/// Case-insensitive pattern tests on a text field; `%`, `_` and `\` are taken literally. Patterns are 1 to 200 characters.
#[derive(InputObject, Clone, Debug, Default)]
pub struct TextFilter {
    /// Contains this text.
    pub contains: Option<String>,
    /// Starts with this text.
    pub starts_with: Option<String>,
    /// Empty (true) or not empty (false).
    pub is_empty: Option<bool>,
}

/// Conditions on tasks; all given fields must hold. Non-admins are always limited to their own tasks, whatever the filter says.
#[derive(InputObject, Clone, Debug, Default)]
pub struct MidjourneyTaskFilter {
    /// The row id.
    pub id: Option<IntFilter>,
    /// The upstream task id (exact).
    pub mj_id: Option<StringFilter>,
    /// The action: IMAGINE, UPSCALE, VARIATION, VIDEO, … (an open set).
    pub action: Option<StringFilter>,
    /// The status: SUCCESS, FAILURE, IN_PROGRESS, SUBMITTED, NOT_START, … (an open set).
    pub status: Option<StringFilter>,
    /// The owner's user id. Admins only.
    pub user_id: Option<IntFilter>,
    /// The upstream channel. Admins only.
    pub channel_id: Option<IntFilter>,
    /// The submit time, as stored (new-api stores epoch milliseconds).
    pub submit_time: Option<LongFilter>,
    /// The start time, as stored.
    pub start_time: Option<LongFilter>,
    /// The finish time, as stored.
    pub finish_time: Option<LongFilter>,
    /// Finished (progress is "100%") or not.
    pub finished: Option<bool>,
    /// Has an image URL or not.
    pub has_image: Option<bool>,
    /// Tests on the prompt.
    pub prompt: Option<TextFilter>,
    /// Tests on the failure reason.
    pub fail_reason: Option<TextFilter>,
    /// The quota charged.
    pub quota: Option<IntFilter>,
    /// All of these filters hold (at most 10).
    pub and: Option<Vec<MidjourneyTaskFilter>>,
    /// At least one of these filters holds (at most 10).
    pub or: Option<Vec<MidjourneyTaskFilter>>,
    /// This filter does not hold.
    pub not: Option<Box<MidjourneyTaskFilter>>,
}

impl From<IntFilter> for NumFilter {
    fn from(f: IntFilter) -> Self {
        NumFilter {
            eq: f.eq,
            ne: f.ne,
            gt: f.gt,
            gte: f.gte,
            lt: f.lt,
            lte: f.lte,
            in_list: f.in_list,
            not_in: f.not_in,
        }
    }
}

impl From<LongFilter> for NumFilter {
    fn from(f: LongFilter) -> Self {
        NumFilter {
            eq: f.eq.map(|v| v.0),
            gt: f.gt.map(|v| v.0),
            gte: f.gte.map(|v| v.0),
            lt: f.lt.map(|v| v.0),
            lte: f.lte.map(|v| v.0),
            ..Default::default()
        }
    }
}

impl From<StringFilter> for SvcStringFilter {
    fn from(f: StringFilter) -> Self {
        SvcStringFilter {
            eq: f.eq,
            ne: f.ne,
            in_list: f.in_list,
            not_in: f.not_in,
        }
    }
}

impl From<TextFilter> for SvcTextFilter {
    fn from(f: TextFilter) -> Self {
        SvcTextFilter {
            contains: f.contains,
            starts_with: f.starts_with,
            is_empty: f.is_empty,
        }
    }
}

impl MidjourneyTaskFilter {
    /// The service filter. Nesting deeper than the service allows is refused here already, so a hostile input never recurses far.
    pub fn into_service(self) -> Result<TaskFilter, Error> {
        self.convert(1)
    }

    fn convert(self, depth: usize) -> Result<TaskFilter, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::BadFilter(format!(
                "filter nesting is deeper than {MAX_DEPTH} levels"
            )));
        }
        let list = |l: Option<Vec<MidjourneyTaskFilter>>| -> Result<Vec<TaskFilter>, Error> {
            l.unwrap_or_default()
                .into_iter()
                .map(|f| f.convert(depth + 1))
                .collect()
        };
        Ok(TaskFilter {
            id: self.id.map(Into::into),
            mj_id: self.mj_id.map(Into::into),
            action: self.action.map(Into::into),
            status: self.status.map(Into::into),
            user_id: self.user_id.map(Into::into),
            channel_id: self.channel_id.map(Into::into),
            submit_time: self.submit_time.map(Into::into),
            start_time: self.start_time.map(Into::into),
            finish_time: self.finish_time.map(Into::into),
            quota: self.quota.map(Into::into),
            finished: self.finished,
            has_image: self.has_image,
            prompt: self.prompt.map(Into::into),
            fail_reason: self.fail_reason.map(Into::into),
            and: list(self.and)?,
            or: list(self.or)?,
            not: match self.not {
                Some(f) => Some(Box::new(f.convert(depth + 1)?)),
                None => None,
            },
        })
    }
}
