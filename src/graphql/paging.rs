//! GraphQL inputs for ordering and paging, and their translation to the service's.

use async_graphql::{Enum, InputObject, OneofObject};

use crate::error::Error;
use crate::service::{
    CursorPage as SvcCursorPage, Direction, OffsetPage as SvcOffsetPage, OrderField, PageRequest,
    TaskOrder,
};

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

/// A keyset page: `first` rows after the `after` cursor, or `last` rows before `before`. Costs the same at any depth. A cursor only works with the order and filter it came from.
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
