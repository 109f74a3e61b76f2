//! GraphQL input types (filters, ordering, pages) and their translation to the service's.

use async_graphql::{Enum, InputObject, OneofObject};

use crate::error::Error;
use crate::graphql::scalars::Long;
use crate::service::filter::MAX_DEPTH;
use crate::service::{
    CursorPage as SvcCursorPage, Direction, NumFilter, OffsetPage as SvcOffsetPage, OrderField,
    PageRequest, StringFilter as SvcStringFilter, TaskFilter, TaskOrder,
    TextFilter as SvcTextFilter,
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

/// Exact comparisons on a string field (no pattern matching). All given operators must
/// hold.
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

/// Case-insensitive pattern tests on a text field; `%`, `_` and `\` are taken literally.
/// Patterns are 1 to 200 characters.
#[derive(InputObject, Clone, Debug, Default)]
pub struct TextFilter {
    /// Contains this text.
    pub contains: Option<String>,
    /// Starts with this text.
    pub starts_with: Option<String>,
    /// Empty (true) or not empty (false).
    pub is_empty: Option<bool>,
}

/// Conditions on tasks; all given fields must hold. Non-admins are always limited to their
/// own tasks, whatever the filter says.
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
    /// The service filter. Nesting deeper than the service allows is refused here already,
    /// so a hostile input never recurses far.
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

/// A field tasks can be ordered by.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskOrderField {
    /// The row id (creation order).
    Id,
    /// The submit time.
    SubmitTime,
    /// The finish time.
    FinishTime,
    /// The quota charged.
    Quota,
}

/// A sort direction.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderDirection {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// One sort key. At most 3 keys; `id` is always added as the final tie-breaker.
#[derive(InputObject, Clone, Copy, Debug)]
pub struct MidjourneyTaskOrder {
    /// The field to sort by.
    pub field: TaskOrderField,
    /// The direction.
    #[graphql(default_with = "OrderDirection::Desc")]
    pub direction: OrderDirection,
}

impl From<MidjourneyTaskOrder> for TaskOrder {
    fn from(o: MidjourneyTaskOrder) -> Self {
        TaskOrder {
            field: match o.field {
                TaskOrderField::Id => OrderField::Id,
                TaskOrderField::SubmitTime => OrderField::SubmitTime,
                TaskOrderField::FinishTime => OrderField::FinishTime,
                TaskOrderField::Quota => OrderField::Quota,
            },
            direction: match o.direction {
                OrderDirection::Asc => Direction::Asc,
                OrderDirection::Desc => Direction::Desc,
            },
        }
    }
}

/// A numbered page. `page × pageSize` is at most 10,000: go deeper with cursors.
#[derive(InputObject, Clone, Copy, Debug)]
pub struct OffsetPage {
    /// The page number, from 1.
    #[graphql(default = 1)]
    pub page: i64,
    /// Rows per page, 1 to 100.
    #[graphql(default = 20)]
    pub page_size: i64,
}

/// A keyset page: `first` rows after the `after` cursor, or `last` rows before `before`.
/// Costs the same at any depth. A cursor only works with the order and filter it came from.
#[derive(InputObject, Clone, Debug, Default)]
pub struct CursorPage {
    /// Rows to return going forwards, 1 to 100 (default 20).
    pub first: Option<i64>,
    /// Start after this cursor.
    pub after: Option<String>,
    /// Rows to return going backwards, 1 to 100.
    pub last: Option<i64>,
    /// End before this cursor.
    pub before: Option<String>,
}

/// How to page: exactly one of `offset` or `cursor`. The default is offset page 1 of 20.
#[derive(OneofObject, Clone, Debug)]
pub enum PageInput {
    /// Numbered pages.
    Offset(OffsetPage),
    /// Keyset cursors.
    Cursor(CursorPage),
}

impl PageInput {
    /// The service's page request (offset limits checked here, before any SQL).
    pub fn into_service(page: Option<PageInput>) -> Result<PageRequest, Error> {
        match page {
            None => Ok(PageRequest::default()),
            Some(PageInput::Offset(o)) => Ok(PageRequest::Offset(SvcOffsetPage::strict(
                o.page,
                o.page_size,
            )?)),
            Some(PageInput::Cursor(c)) => {
                for cursor in c.after.iter().chain(c.before.iter()) {
                    if cursor.len() > crate::service::page::MAX_CURSOR_LEN {
                        return Err(Error::BadFilter("malformed cursor".into()));
                    }
                }
                Ok(PageRequest::Cursor(SvcCursorPage {
                    first: c.first,
                    after: c.after,
                    last: c.last,
                    before: c.before,
                }))
            }
        }
    }
}

/// The rows a page can return, for the complexity limit (a list costs rows × child cost).
pub fn page_rows(page: &Option<PageInput>) -> usize {
    let rows = match page {
        None => 20,
        Some(PageInput::Offset(o)) => o.page_size,
        Some(PageInput::Cursor(c)) => c.first.or(c.last).unwrap_or(20),
    };
    rows.clamp(1, 100) as usize
}
