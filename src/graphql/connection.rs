//! The task connection: nodes, edges, page info, and a lazily counted total.

use async_graphql::{Context, Object, SimpleObject};
use tokio::sync::OnceCell;

use crate::graphql::context::{arrived, caller};
use crate::graphql::errors::Gql;
use crate::graphql::plain::{Plain, PlainList};
use crate::graphql::task::MidjourneyTask;
use crate::service::{Log, Page, TaskPage, TaskQuery, Viewer};

/// One page of tasks. `totalCount` and `pageInfo.totalPages` run a count query only when selected.
pub struct MidjourneyTaskConnection {
    pub page: TaskPage,
    pub query: TaskQuery,
    pub viewer: Viewer,
    pub total: OnceCell<u64>,
}

impl MidjourneyTaskConnection {
    async fn total(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        let (service, _, lang) = caller(ctx)?;
        self.total
            .get_or_try_init(|| async {
                service
                    .count_tasks_since(&self.viewer, &self.query, arrived(ctx))
                    .await
                    .gql(lang)
            })
            .await
            .copied()
    }

    fn tasks(&self) -> impl Iterator<Item = MidjourneyTask<'_>> + '_ {
        let admin = self.viewer.is_admin();
        self.page
            .rows
            .iter()
            .map(move |r| MidjourneyTask::borrowed(r, admin))
    }
}

/// A task with its cursor.
#[derive(SimpleObject)]
pub struct MidjourneyTaskEdge<'a> {
    /// Pass as `after` or `before` (with the same order and filter) to page from here.
    pub cursor: String,
    /// The task.
    pub node: Plain<MidjourneyTask<'a>>,
}

/// Where a page stands: what its page already knows, and where to count the total.
pub struct PageInfo<'a> {
    has_next_page: bool,
    has_previous_page: bool,
    start_cursor: Option<String>,
    end_cursor: Option<String>,
    page: Option<u64>,
    page_size: u64,
    total: TotalOf<'a>,
}

/// The connection whose total `totalPages` counts (only when selected).
pub enum TotalOf<'a> {
    Midjourney(&'a MidjourneyTaskConnection),
    Task(&'a crate::graphql::task_log::TaskConnection),
}

impl<'a> PageInfo<'a> {
    /// The page info of `page`, counting through `total`.
    pub fn of<L: Log>(page: &Page<L>, total: TotalOf<'a>) -> PageInfo<'a> {
        PageInfo {
            has_next_page: page.has_next_page,
            has_previous_page: page.has_previous_page,
            start_cursor: page.cursor(0),
            end_cursor: page.rows.len().checked_sub(1).and_then(|i| page.cursor(i)),
            page: page.page,
            page_size: page.page_size,
            total,
        }
    }
}

/// Where this page stands among all matching tasks.
#[Object]
impl PageInfo<'_> {
    /// Whether more tasks follow this page.
    async fn has_next_page(&self) -> bool {
        self.has_next_page
    }
    /// Whether tasks precede this page.
    async fn has_previous_page(&self) -> bool {
        self.has_previous_page
    }
    /// The first task's cursor (null on an empty page).
    async fn start_cursor(&self) -> Option<&str> {
        self.start_cursor.as_deref()
    }
    /// The last task's cursor (null on an empty page).
    async fn end_cursor(&self) -> Option<&str> {
        self.end_cursor.as_deref()
    }
    /// The page number (offset pages only; null with cursors).
    async fn page(&self) -> Option<u64> {
        self.page
    }
    /// Rows per page.
    async fn page_size(&self) -> u64 {
        self.page_size
    }
    /// How many pages of this size the matching tasks fill (runs the count query).
    async fn total_pages(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        let total = match self.total {
            TotalOf::Midjourney(c) => c.total(ctx).await?,
            TotalOf::Task(c) => c.total(ctx).await?,
        };
        Ok(total.div_ceil(self.page_size.max(1)))
    }
}

/// A page of tasks.
#[Object]
impl MidjourneyTaskConnection {
    /// The tasks of this page.
    async fn nodes(&self) -> PlainList<MidjourneyTask<'_>> {
        PlainList(self.tasks().collect())
    }
    /// The tasks of this page with their cursors.
    async fn edges(&self) -> Vec<MidjourneyTaskEdge<'_>> {
        self.tasks()
            .zip(self.page.cursors())
            .map(|(node, cursor)| MidjourneyTaskEdge {
                cursor,
                node: Plain(node),
            })
            .collect()
    }
    /// Where this page stands.
    async fn page_info(&self) -> PageInfo<'_> {
        PageInfo::of(&self.page, TotalOf::Midjourney(self))
    }
    /// How many tasks match in all (an exact count, run only when selected).
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        self.total(ctx).await
    }
}
