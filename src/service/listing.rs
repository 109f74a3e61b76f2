//! Listing, counting and finding the rows of any task log for a viewer: the one place
//! scoping, pages (offset and keyset) and counts are decided, for every [`Log`].

use std::time::Instant;

use sea_orm::sea_query::{Condition, Expr, SubQueryStatement};
use sea_orm::{
    ColumnTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, Order, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, QueryTrait, Select, Statement,
};

use crate::error::Error;
use crate::service::cursor;
use crate::service::filter::NumFilter;
use crate::service::log::{Decoded, Log, LogFilter, LogQuery, SortField};
use crate::service::order::{self, KeyOrder};
use crate::service::page::{self, Page, PageRequest, TaskPage};
use crate::service::record::TaskRecord;
use crate::service::row::{RowReader, not_null};
use crate::service::viewer::Viewer;
use crate::service::{Direction, Midjourneys, Service};

/// Whose tasks a query ranges over (always intersected with what the viewer may see).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Everything the viewer may see: all tasks for admins, their own for everyone else.
    #[default]
    Visible,
    /// Only the viewer's own tasks, whatever their role (`/api/mj/self`).
    Own,
}

/// What to list from the Midjourney log.
pub type TaskQuery = LogQuery<Midjourneys>;

/// The rows `viewer` may reach under `scope`: admins asking for everything see every row,
/// anyone else only rows they own. Added by the server, never taken from the client.
fn scope_condition<L: Log>(viewer: &Viewer, scope: Scope) -> Condition {
    if sees_all(viewer, scope) {
        Condition::all()
    } else {
        Condition::all().add(L::user_column().eq(viewer.id))
    }
}

fn sees_all(viewer: &Viewer, scope: Scope) -> bool {
    viewer.is_admin() && scope == Scope::Visible
}

/// The same rule in memory: whether `viewer` may reach a task owned by `owner`.
pub fn may_see(viewer: &Viewer, scope: Scope, owner: i64) -> bool {
    sees_all(viewer, scope) || owner == viewer.id
}

/// The rows of `L` the query ranges over (scope and filter), every column selected.
pub(crate) fn scoped<L: Log>(
    backend: DbBackend,
    viewer: &Viewer,
    query: &LogQuery<L>,
) -> Select<L::Entity> {
    scoped_columns(L::rows(backend), backend, viewer, query)
}

/// The rows of `L` the query ranges over (scope and filter), no column selected yet.
pub(crate) fn scoped_bare<L: Log>(
    backend: DbBackend,
    viewer: &Viewer,
    query: &LogQuery<L>,
) -> Select<L::Entity> {
    scoped_columns(L::bare(), backend, viewer, query)
}

/// How many rows of `L` the query ranges over (scope and filter; its order and page
/// ignored): `SELECT COUNT(*) AS n ...`.
fn count_select<L: Log>(
    backend: DbBackend,
    viewer: &Viewer,
    query: &LogQuery<L>,
) -> Select<L::Entity> {
    one_row_aggregate(
        scoped_bare(backend, viewer, query).column_as(Expr::cust("COUNT(*)"), "n"),
        backend,
    )
}

/// `select`, an aggregate of one row, as it is sent on `backend`: without a `LIMIT`,
/// except on MySQL/MariaDB. There, once a prepared statement reading whole rows (a page)
/// has run in the same session, MariaDB 10.11 re-executes a prepared count without a
/// `LIMIT` as a full table scan (`Handler_read_rnd_next` 1,000,001 instead of
/// `Handler_read_next` 100,271 for the heavy user: 1 s instead of 10 ms; another driver
/// does the same, see the README's fifth round); with `LIMIT 1` it keeps the index.
pub(crate) fn one_row_aggregate<E: EntityTrait>(
    select: Select<E>,
    backend: DbBackend,
) -> Select<E> {
    if backend == DbBackend::MySql {
        select.limit(1)
    } else {
        select
    }
}

/// `page` with the total of the rows the query ranges over beside its columns, as
/// [`TOTAL_COLUMN`] (see [`Service::page_and_total`]).
fn with_total<L: Log>(
    page: Select<L::Entity>,
    backend: DbBackend,
    viewer: &Viewer,
    query: &LogQuery<L>,
) -> Select<L::Entity> {
    let count = count_select(backend, viewer, query).into_query();
    page.expr_as(
        Expr::SubQuery(None, Box::new(SubQueryStatement::from(count))),
        TOTAL_COLUMN,
    )
}

/// The name of the total's column beside a page's columns (see
/// [`Service::page_and_total`]); no log has a column of that name.
const TOTAL_COLUMN: &str = "mj_tasks_total";

/// A row of a page read with its total beside it: the row's model, and the total.
struct WithTotal<L: Log>(<L::Entity as EntityTrait>::Model, i64);

impl<L: Log> FromQueryResult for WithTotal<L> {
    fn from_query_result(row: &QueryResult, _pre: &str) -> Result<Self, DbErr> {
        let total = not_null(
            RowReader::new(row).get_last(TOTAL_COLUMN)?,
            "a page's total",
        )?;
        Ok(WithTotal(L::decode(row)?, total))
    }
}

/// `select` limited to the rows the query ranges over.
fn scoped_columns<L: Log>(
    select: Select<L::Entity>,
    backend: DbBackend,
    viewer: &Viewer,
    query: &LogQuery<L>,
) -> Select<L::Entity> {
    select
        .filter(scope_condition::<L>(viewer, query.scope))
        .filter(query.filter.parts(backend))
}

/// One batch of an export: the rows after `after` (the sort keys of the last row of the
/// previous batch; `None` for the first) in `order`, at most `limit` of them. Keyset, never
/// OFFSET: every batch costs the same however deep it is.
pub(crate) fn keyset_batch<L: Log>(
    backend: DbBackend,
    viewer: &Viewer,
    query: &LogQuery<L>,
    order: &[KeyOrder<L::Field>],
    after: Option<&[i64]>,
    limit: u64,
) -> Select<L::Entity> {
    let mut select = scoped(backend, viewer, query);
    if let Some(values) = after {
        select = select.filter(cursor::beyond(order, values, true));
    }
    for key in order {
        select = select.order_by(key.field.expr(), sea_order(key.direction));
    }
    select.limit(limit)
}

fn sea_order(d: Direction) -> Order {
    match d {
        Direction::Asc => Order::Asc,
        Direction::Desc => Order::Desc,
    }
}

/// From this many rows deep, an offset page finds its ids first (an index-only scan where
/// the database has one), then reads just those rows.
pub const IDS_FIRST_OFFSET: u64 = 1_000;

/// Which columns a page reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Columns {
    /// Every column the record holds.
    #[default]
    All,
    /// Without the large columns the answer does not show (the task log's `data`; the
    /// Midjourney columns `/api/mj/self` leaves out).
    Lean,
}

/// A page query ready to run: its statement, and what is needed to read the answer.
struct PagePlan<L: Log> {
    /// Find the page's ids first, then the rows (deep offset pages).
    ids_first: bool,
    select: Select<L::Entity>,
    columns: Columns,
    order: Vec<KeyOrder<L::Field>>,
    fingerprint: String,
    limit: u64,
    backwards: bool,
    offset_page: Option<u64>,
}

impl Service {
    /// Checks the query and builds its page statement (one row more than the page, to learn
    /// whether another page follows), without running it.
    fn page_plan<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
        columns: Columns,
    ) -> Result<PagePlan<L>, Error> {
        query.filter.validate(viewer)?;
        let order = order::normalize(&query.order)?;
        let fingerprint = cursor::fingerprint(&order, &query.filter);
        let backend = self.db.get_database_backend();
        let rows = L::rows_with(backend, columns == Columns::Lean);
        let mut select = scoped_columns(rows, backend, viewer, query);

        let (limit, backwards, offset_page) = match &query.page {
            PageRequest::Offset(p) => {
                select = select.offset(p.offset());
                (p.page_size, false, Some(p.page))
            }
            PageRequest::Cursor(c) => {
                let (limit, backwards) = match (c.first, c.last) {
                    (Some(_), Some(_)) => {
                        return Err(Error::BadFilter("give first or last, not both".into()));
                    }
                    (None, Some(n)) => (page::check_size(n, "last")?, true),
                    (Some(n), None) => (page::check_size(n, "first")?, false),
                    (None, None) => (page::DEFAULT_PAGE_SIZE, false),
                };
                if let Some(after) = &c.after {
                    let values = cursor::decode(after, &order, &fingerprint)?;
                    select = select.filter(cursor::beyond(&order, &values, true));
                }
                if let Some(before) = &c.before {
                    let values = cursor::decode(before, &order, &fingerprint)?;
                    select = select.filter(cursor::beyond(&order, &values, false));
                }
                (limit, backwards, None)
            }
        };
        for key in &order {
            let dir = if backwards {
                key.direction.reversed()
            } else {
                key.direction
            };
            select = select.order_by(key.field.expr(), sea_order(dir));
        }
        let ids_first =
            matches!(&query.page, PageRequest::Offset(p) if p.offset() >= IDS_FIRST_OFFSET);
        Ok(PagePlan {
            ids_first,
            columns,
            select: select.limit(limit.saturating_add(1)),
            order,
            fingerprint,
            limit,
            backwards,
            offset_page,
        })
    }

    /// A deep offset page in two steps: the ids (the offset walked over an index only, where
    /// there is one), then those rows, in the page's order.
    async fn rows_by_ids_first<L: Log>(
        &self,
        plan: &PagePlan<L>,
    ) -> Result<Vec<<L::Entity as EntityTrait>::Model>, Error> {
        let ids_only = plan.select.clone().select_only().column(L::id_column());
        let ids = self
            .read("ids", |db| {
                Box::pin(ids_only.clone().into_tuple::<i64>().all(db))
            })
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.db.get_database_backend();
        let lean = plan.columns == Columns::Lean;
        let mut rows = L::rows_with(backend, lean).filter(L::id_column().is_in(ids));
        for key in &plan.order {
            rows = rows.order_by(key.field.expr(), sea_order(key.direction));
        }
        let decoded = self
            .read("rows", |db| {
                Box::pin(rows.clone().into_model::<Decoded<L>>().all(db))
            })
            .await?;
        Ok(decoded.into_iter().map(|Decoded(m)| m).collect())
    }

    /// The SQL statements a page and its total run, as they would be sent (for the
    /// benchmark's floor, which sends them straight to the database).
    pub fn page_statements<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
    ) -> Result<(Statement, Statement), Error> {
        let backend = self.db.get_database_backend();
        let plan = self.page_plan(viewer, query, Columns::All)?;
        let count = count_select(backend, viewer, query);
        Ok((plan.select.build(backend), count.build(backend)))
    }

    /// The one statement [`Service::page_and_total`] sends for a page with its total on
    /// PostgreSQL and SQLite (page and count in one; the benchmark's floor runs it too).
    pub fn page_with_total_statement<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
        columns: Columns,
    ) -> Result<Statement, Error> {
        let backend = self.db.get_database_backend();
        let plan = self.page_plan(viewer, query, columns)?;
        Ok(with_total(plan.select, backend, viewer, query).build(backend))
    }

    /// One page of the Midjourney tasks `viewer` may see that match the query.
    pub async fn list_tasks(&self, viewer: &Viewer, query: &TaskQuery) -> Result<TaskPage, Error> {
        self.list(viewer, query).await
    }

    /// One page of the rows of log `L` that `viewer` may see and that match the query, in
    /// one SQL query (one row more than the page is fetched to learn whether another page
    /// follows).
    pub async fn list<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
    ) -> Result<Page<L>, Error> {
        self.list_columns(viewer, query, Columns::All).await
    }

    /// [`Service::list`] reading only `columns` (a lean page leaves out what the answer does
    /// not show; those fields of its records are empty).
    pub async fn list_columns<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
        columns: Columns,
    ) -> Result<Page<L>, Error> {
        let plan = self.page_plan(viewer, query, columns)?;
        self.rows_query();
        let select = &plan.select;
        let models = if plan.ids_first {
            self.rows_by_ids_first(&plan).await?
        } else {
            let decoded = self
                .read("rows", |db| {
                    Box::pin(select.clone().into_model::<Decoded<L>>().all(db))
                })
                .await?;
            decoded.into_iter().map(|Decoded(m)| m).collect()
        };
        Ok(self.page_of(plan, query, models))
    }

    /// The page `plan` read as `models` (one more than the page when another follows).
    fn page_of<L: Log>(
        &self,
        plan: PagePlan<L>,
        query: &LogQuery<L>,
        models: Vec<<L::Entity as EntityTrait>::Model>,
    ) -> Page<L> {
        let limit = plan.limit;
        let backwards = plan.backwards;
        let more = models.len() as u64 > limit;
        let mut rows: Vec<L::Record> = models
            .into_iter()
            .take(limit as usize)
            .map(|m| L::record(m, self))
            .collect();
        if backwards {
            rows.reverse();
        }

        let (has_next_page, has_previous_page) = match &query.page {
            PageRequest::Offset(p) => (more, p.page > 1),
            PageRequest::Cursor(c) if backwards => (c.before.is_some(), more),
            PageRequest::Cursor(c) => (more, c.after.is_some()),
        };
        Page {
            rows,
            order: plan.order,
            fingerprint: plan.fingerprint,
            has_next_page,
            has_previous_page,
            page: plan.offset_page,
            page_size: limit,
        }
    }

    /// How many tasks match the query's scope and filter (its order and page are
    /// ignored): exact, one `COUNT(*)` query.
    ///
    /// Identical counts asked at the same time run once and share the answer; with a
    /// freshness window (`--count-freshness-ms`) a finished count is reused for that long.
    pub async fn count_tasks(&self, viewer: &Viewer, query: &TaskQuery) -> Result<u64, Error> {
        self.count_since(viewer, query, Instant::now()).await
    }

    /// [`Service::count_tasks`] for a request that began at `since`: a count already running
    /// is shared only when it started since (the total is then as of a moment during the
    /// request, never before it).
    pub async fn count_tasks_since(
        &self,
        viewer: &Viewer,
        query: &TaskQuery,
        since: Instant,
    ) -> Result<u64, Error> {
        self.count_since(viewer, query, since).await
    }

    /// One page of log `L` (reading `columns`) and the total of rows it is a page of, for a
    /// request that began at `since`.
    ///
    /// A first page whose filter pins rows by id or key (an `mj_id` lookup) usually holds
    /// them all: that page is read first, and when it is not full its length is the total
    /// (exact: the same rows, read at the same moment), so no count runs. Otherwise the
    /// page and its count are one statement (see [`Service::page_with_total`]), whose
    /// total others asking for the same count meanwhile share; a request that finds an
    /// identical count running (or reusable within `--count-freshness-ms`) joins it and
    /// reads just its page meanwhile, as does a deep page (read in two steps).
    ///
    /// Each way's reads are boxed: inline, all their states would be laid out in this
    /// future (13 KiB on PostgreSQL), which every caller's future then carries and moves
    /// whole (memmove was the largest symbol of the server's profile).
    pub async fn page_and_total<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
        columns: Columns,
        since: Instant,
    ) -> Result<(Page<L>, u64), Error> {
        let first = matches!(&query.page, PageRequest::Offset(p) if p.offset() == 0);
        if first && query.filter.pins_rows() {
            let page = Box::pin(self.list_columns(viewer, query, columns)).await?;
            if !page.has_next_page {
                let total = page.rows.len() as u64;
                return Ok((page, total));
            }
            let total = Box::pin(self.count_since(viewer, query, since)).await?;
            return Ok((page, total));
        }
        let plan = self.page_plan(viewer, query, columns)?;
        let (count, key) = self.count_and_key(viewer, query);
        let backend = self.db.get_database_backend();
        // MySQL/MariaDB: a count needs its `LIMIT` there (see `one_row_aggregate`); as a subquery
        // beside the page, the heavy user's page took 2 s instead of 5 ms (`bench --http`,
        // 1,000,000 rows, MariaDB 10.11), so page and count stay two statements.
        if plan.ids_first || backend == DbBackend::MySql || self.counts.usable(&key, since) {
            // A deep page reads its ids first; an identical count is running (or fresh):
            // join it, and read the page meanwhile.
            let (page, total) = tokio::join!(
                Box::pin(self.list_columns(viewer, query, columns)),
                Box::pin(self.counts.get_or_run(key, since, self.run_count(count)))
            );
            return Ok((page?, total?));
        }
        // Page and count in one statement, which is the count others asking for the same
        // total meanwhile join.
        let select = with_total(plan.select.clone(), backend, viewer, query);
        let mut models = None;
        let total = Box::pin(self.counts.get_or_run(key, since, async {
            let (read, total) = self.page_with_total::<L>(&select).await?;
            models = Some(read);
            match total {
                Some(n) => Ok(n),
                None => self.run_count(count).await,
            }
        }))
        .await?;
        match models {
            Some(models) => Ok((self.page_of(plan, query, models), total)),
            // Another request's identical count started in between and was joined.
            None => Ok((
                Box::pin(self.list_columns(viewer, query, columns)).await?,
                total,
            )),
        }
    }

    /// Reads `select` (a page with [`TOTAL_COLUMN`] beside its columns): the page's rows,
    /// and the total (`None` for an empty page, which carries none).
    ///
    /// The count is a scalar subquery beside the page's columns (`SELECT <columns>, (SELECT
    /// COUNT(*) FROM <table> WHERE <scope and filter>) AS mj_tasks_total FROM <table> WHERE
    /// ... ORDER BY ... LIMIT ...`), uncorrelated, so the database runs it once per
    /// statement, not per row: one round trip, one connection and one statement instead of
    /// two (the database's CPU is most of a request's cost), page and total read at the same
    /// moment.
    async fn page_with_total<L: Log>(
        &self,
        select: &Select<L::Entity>,
    ) -> Result<(Vec<<L::Entity as EntityTrait>::Model>, Option<u64>), Error> {
        self.rows_query();
        self.count_query();
        let read = self
            .read("rows", |db| {
                Box::pin(select.clone().into_model::<WithTotal<L>>().all(db))
            })
            .await?;
        let total = read.first().map(|WithTotal(_, n)| (*n).max(0) as u64);
        Ok((read.into_iter().map(|WithTotal(m, _)| m).collect(), total))
    }

    /// How many rows of log `L` match the query's scope and filter, for a request that
    /// began at `since` (see [`Service::count_tasks_since`]).
    pub async fn count_since<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
        since: Instant,
    ) -> Result<u64, Error> {
        query.filter.validate(viewer)?;
        let (count, key) = self.count_and_key(viewer, query);
        self.counts
            .get_or_run(key, since, self.run_count(count))
            .await
    }

    /// The query's count, and the key identical counts share.
    fn count_and_key<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
    ) -> (Select<L::Entity>, String) {
        let backend = self.db.get_database_backend();
        let count = count_select(backend, viewer, query);
        let statement = count.build(backend);
        let key = format!("{}|{:?}", statement.sql, statement.values);
        (count, key)
    }

    /// Runs `count` (a [`count_select`]).
    async fn run_count<E: EntityTrait>(&self, count: Select<E>) -> Result<u64, Error> {
        self.count_query();
        let n = self
            .read("count", |db| {
                Box::pin(count.clone().into_tuple::<i64>().all(db))
            })
            .await?;
        Ok(n.into_iter().next().unwrap_or(0).max(0) as u64)
    }
}

/// How to find one task of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskKey {
    Id(i64),
    /// The upstream key (`mj_id`, `task_id`) is not unique: the newest visible task with it.
    MjId(String),
}

impl Service {
    /// The Midjourney task `key` names, if `viewer` may see it.
    pub async fn find_task(
        &self,
        viewer: &Viewer,
        key: TaskKey,
    ) -> Result<Option<TaskRecord>, Error> {
        self.find_by_key::<Midjourneys>(viewer, key).await
    }

    /// The task of log `L` that `key` names (by upstream key: the newest), if `viewer` may
    /// see it.
    pub async fn find_by_key<L: Log>(
        &self,
        viewer: &Viewer,
        key: TaskKey,
    ) -> Result<Option<L::Record>, Error> {
        let filter = match key {
            TaskKey::Id(id) => L::id_filter(NumFilter {
                eq: Some(id),
                ..Default::default()
            }),
            TaskKey::MjId(k) => L::keys_filter(&[k]),
        };
        self.find_first::<L>(viewer, filter).await
    }

    /// The newest row of log `L` matching `filter` that `viewer` may see.
    pub async fn find_first<L: Log>(
        &self,
        viewer: &Viewer,
        filter: L::Filter,
    ) -> Result<Option<L::Record>, Error> {
        let query = LogQuery::<L> {
            filter,
            page: PageRequest::Offset(page::OffsetPage {
                page: 1,
                page_size: 1,
            }),
            ..Default::default()
        };
        Ok(self.list(viewer, &query).await?.rows.into_iter().next())
    }

    /// The tasks with these row ids, each `None` where there is no such task or `viewer` may
    /// not see it, in the order asked (a repeated id repeats its task); one query for all.
    /// At most [`MAX_LIST`](crate::service::filter::MAX_LIST) distinct ids (the filter's own
    /// limit on `in` lists).
    pub async fn find_tasks(
        &self,
        viewer: &Viewer,
        ids: &[i64],
    ) -> Result<Vec<Option<TaskRecord>>, Error> {
        self.find_by_ids::<Midjourneys>(viewer, ids).await
    }

    /// [`Service::find_tasks`] for any log.
    pub async fn find_by_ids<L: Log>(
        &self,
        viewer: &Viewer,
        ids: &[i64],
    ) -> Result<Vec<Option<L::Record>>, Error> {
        let mut distinct = ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.is_empty() {
            return Ok(Vec::new());
        }
        let page_size = distinct.len() as u64;
        let query = LogQuery::<L> {
            filter: L::id_filter(NumFilter {
                in_list: Some(distinct),
                ..Default::default()
            }),
            page: PageRequest::Offset(page::OffsetPage { page: 1, page_size }),
            ..Default::default()
        };
        let found = self.list(viewer, &query).await?.rows;
        Ok(ids
            .iter()
            .map(|id| found.iter().find(|r| L::record_id(r) == *id).cloned())
            .collect())
    }
}
