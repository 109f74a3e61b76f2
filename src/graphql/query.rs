//! The query root.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use tokio::sync::OnceCell;

use crate::error::Error;
use crate::graphql::connection::MidjourneyTaskConnection;
use crate::graphql::context::{arrived, caller};
use crate::graphql::errors::{Gql, to_gql};
use crate::graphql::export::{self, ExportFormat, ExportLink};
use crate::graphql::inputs::MidjourneyTaskFilter;
use crate::graphql::node::{self, Node};
use crate::graphql::paging::{MidjourneyTaskOrder, PageInput, page_rows};
use crate::graphql::stats::MidjourneyTaskStats;
use crate::graphql::task::MidjourneyTask;
use crate::graphql::task_log::{Task, TaskConnection, TaskFilterInput, TaskOrder, TaskStats};
use crate::service::LogFilter;
use crate::service::filter::MAX_VALUE;
use crate::service::{
    Columns, KeyOrder, Log, LogQuery, Lookups, Midjourneys, PlatformTaskQuery, Role, Scope,
    TaskKey, TaskQuery, Tasks, Viewer as SvcViewer,
};

/// The root of every query.
pub struct Query;

/// A user's role.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserRole {
    /// A guest (role 0).
    Guest,
    /// A common user (role 1).
    User,
    /// An admin (role 10): sees every task.
    Admin,
    /// The root user (role 100): sees every task.
    Root,
}

/// The authenticated caller.
#[derive(SimpleObject)]
pub struct Viewer {
    /// The user id (the `New-Api-User` header).
    pub id: i64,
    /// The user name.
    pub username: String,
    /// The role.
    pub role: UserRole,
    /// Whether the caller sees every user's tasks and the admin-only fields.
    pub is_admin: bool,
}

/// The service query of a list or statistics field of either log: the filter the input translates to, the orders, the page.
fn log_query<L: Log, F, O: Into<KeyOrder<L::Field>>>(
    filter: Option<F>,
    into_service: fn(F) -> Result<L::Filter, Error>,
    order_by: Option<Vec<O>>,
    page: Option<PageInput>,
) -> Result<LogQuery<L>, Error> {
    Ok(LogQuery {
        scope: Scope::Visible,
        filter: filter.map(into_service).transpose()?.unwrap_or_default(),
        order: order_by
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect(),
        page: PageInput::into_service(page)?,
    })
}

fn task_query(
    filter: Option<MidjourneyTaskFilter>,
    order_by: Option<Vec<MidjourneyTaskOrder>>,
    page: Option<PageInput>,
) -> Result<TaskQuery, Error> {
    log_query(filter, MidjourneyTaskFilter::into_service, order_by, page)
}

fn task_log_query(
    filter: Option<TaskFilterInput>,
    order_by: Option<Vec<TaskOrder>>,
    page: Option<PageInput>,
) -> Result<PlatformTaskQuery, Error> {
    log_query(filter, TaskFilterInput::into_service, order_by, page)
}

/// new-api's task logs — Midjourney (`midjourneyTasks`) and the generic log of Suno and video tasks (`tasks`): lists, lookups and statistics. Every data field needs the two auth headers (`Authorization: Bearer <access token>`, `New-Api-User: <user id>`).
#[Object]
impl Query {
    /// Tasks visible to the caller, newest first unless `orderBy` says otherwise. Admins see all tasks; everyone else sees only their own.
    #[graphql(complexity = "page_rows(&page) * child_complexity + 1")]
    async fn midjourney_tasks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the tasks must meet (all of them).")] filter: Option<
            MidjourneyTaskFilter,
        >,
        #[graphql(
            desc = "Sort keys, at most 3 (default ID DESC); id is always the last tie-breaker."
        )]
        order_by: Option<Vec<MidjourneyTaskOrder>>,
        #[graphql(desc = "Offset page or keyset cursor (default: offset page 1 of 20).")]
        page: Option<PageInput>,
    ) -> async_graphql::Result<MidjourneyTaskConnection> {
        let (service, viewer, lang) = caller(ctx)?;
        let query = task_query(filter, order_by, page).gql(lang)?;
        // A selected total is counted alongside the page rather than after it.
        let look = ctx.look_ahead();
        let wants_total = look.field("totalCount").exists()
            || look.field("pageInfo").field("totalPages").exists();
        // The columns no field shows (`code`, `state`, `buttons`, `properties`) are never
        // read; `description` and `channel_id` only when selected.
        let wants_all = ["description", "channelId"].iter().any(|f| {
            look.field("nodes").field(f).exists()
                || look.field("edges").field("node").field(f).exists()
        });
        let columns = if wants_all {
            Columns::All
        } else {
            Columns::Lean
        };
        let total = OnceCell::new();
        let page = if wants_total {
            let (page, count) = service
                .page_and_total::<Midjourneys>(viewer, &query, columns, arrived(ctx))
                .await
                .gql(lang)?;
            let _ = total.set(count);
            page
        } else {
            service
                .list_columns::<Midjourneys>(viewer, &query, columns)
                .await
                .gql(lang)?
        };
        Ok(MidjourneyTaskConnection {
            page,
            query,
            viewer: viewer.clone(),
            total,
        })
    }

    /// One task by row id or by mjId (give exactly one). null when there is no such task or the caller may not see it. mjId is not unique: the newest visible task with it.
    async fn midjourney_task(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The row id.")] id: Option<i64>,
        #[graphql(desc = "The upstream task id.")] mj_id: Option<String>,
    ) -> async_graphql::Result<Option<MidjourneyTask<'static>>> {
        let (_, _, lang) = caller(ctx)?;
        let key = match (id, mj_id) {
            (Some(id), None) => TaskKey::Id(id),
            (None, Some(m)) => TaskKey::MjId(m),
            _ => {
                let err = Error::BadFilter("give exactly one of id and mjId".into());
                return Err(to_gql(&err, lang));
            }
        };
        lookup(ctx, key).await
    }

    /// Apollo Federation: a `MidjourneyTask` entity by its row id, scoped like `midjourneyTask` (another user's task resolves to null).
    #[graphql(entity)]
    async fn find_task_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The row id.")] id: i64,
    ) -> async_graphql::Result<Option<MidjourneyTask<'static>>> {
        lookup(ctx, TaskKey::Id(id)).await
    }

    /// Apollo Federation: a `MidjourneyTask` entity by its upstream task id (the newest visible one), scoped like `midjourneyTask`.
    #[graphql(entity)]
    async fn find_task_by_mj_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The upstream task id.")] mj_id: String,
    ) -> async_graphql::Result<Option<MidjourneyTask<'static>>> {
        lookup(ctx, TaskKey::MjId(mj_id)).await
    }

    /// Counts and sums over the same filter and scope as `tasks` (the generic log).
    async fn task_stats(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the tasks must meet (all of them).")] filter: Option<
            TaskFilterInput,
        >,
    ) -> async_graphql::Result<TaskStats> {
        let (_, viewer, lang) = caller(ctx)?;
        let query = task_log_query(filter, None, None).gql(lang)?;
        query.filter.validate(viewer).gql(lang)?;
        Ok(TaskStats {
            query,
            viewer: viewer.clone(),
            totals: OnceCell::new(),
        })
    }

    /// Apollo Federation: a `Task` entity (the generic log) by its row id, scoped like `task` (another user's task resolves to null).
    #[graphql(entity)]
    async fn find_platform_task_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The row id.")] id: i64,
    ) -> async_graphql::Result<Option<Task<'static>>> {
        find_platform_task(ctx, Some(id), None).await
    }

    /// Apollo Federation: a `Task` entity by its public task id (the newest visible one), scoped like `task`.
    #[graphql(entity)]
    async fn find_platform_task_by_task_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The public task id.")] task_id: String,
    ) -> async_graphql::Result<Option<Task<'static>>> {
        find_platform_task(ctx, None, Some(task_id)).await
    }

    /// Relay: the object a global id (`nodeId`) names. null when there is no such object or the caller may not see it (another user's task); `BAD_FILTER` when the text is not a global id of this API.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id, as `nodeId` gives it.")] id: ID,
    ) -> async_graphql::Result<Option<Node>> {
        Ok(node::nodes(ctx, std::slice::from_ref(&id))
            .await?
            .into_iter()
            .next()
            .flatten())
    }

    /// Relay: the objects these global ids name, in the same order, null where there is no such object or the caller may not see it. One query for all; at most 100 ids an operation (with every other lookup).
    #[graphql(complexity = "ids.len() * child_complexity + 1")]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global ids, as `nodeId` gives them.")] ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<Node>>> {
        node::nodes(ctx, &ids).await
    }

    /// Counts and sums over the same filter and scope as `midjourneyTasks`.
    async fn midjourney_task_stats(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the tasks must meet (all of them).")] filter: Option<
            MidjourneyTaskFilter,
        >,
    ) -> async_graphql::Result<MidjourneyTaskStats> {
        let (_, viewer, lang) = caller(ctx)?;
        let query = task_query(filter, None, None).gql(lang)?;
        query.filter.validate(viewer).gql(lang)?;
        Ok(MidjourneyTaskStats {
            query,
            viewer: viewer.clone(),
            totals: OnceCell::new(),
        })
    }

    /// A short-lived signed link that downloads, as CSV or NDJSON, every task `midjourneyTasks` would list with this filter and order (all pages), from one consistent snapshot. Plain `GET` on the link needs no headers.
    async fn midjourney_task_export(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the tasks must meet (all of them).")] filter: Option<
            MidjourneyTaskFilter,
        >,
        #[graphql(
            desc = "Sort keys, at most 3 (default ID DESC); id is always the last tie-breaker."
        )]
        order_by: Option<Vec<MidjourneyTaskOrder>>,
        #[graphql(desc = "The file format.", default_with = "ExportFormat::Csv")]
        format: ExportFormat,
        #[graphql(
            desc = "The IANA time zone of the ISO 8601 time columns (e.g. Europe/Berlin).",
            default = "UTC"
        )]
        time_zone: String,
        #[graphql(
            desc = "Start a CSV with a UTF-8 byte order mark (for spreadsheet programs).",
            default = false
        )]
        bom: bool,
    ) -> async_graphql::Result<ExportLink> {
        let (_, _, lang) = caller(ctx)?;
        let query = task_query(filter, order_by, None).gql(lang)?;
        export::link(
            ctx,
            &query,
            format,
            &time_zone,
            bom,
            "/api/mj/export/download",
        )
    }

    /// A short-lived signed link that downloads, as CSV or NDJSON, every task `tasks` would list with this filter and order (all pages), from one consistent snapshot. Plain `GET` on the link needs no headers.
    async fn task_export(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the tasks must meet (all of them).")] filter: Option<
            TaskFilterInput,
        >,
        #[graphql(
            desc = "Sort keys, at most 3 (default ID DESC); id is always the last tie-breaker."
        )]
        order_by: Option<Vec<TaskOrder>>,
        #[graphql(desc = "The file format.", default_with = "ExportFormat::Csv")]
        format: ExportFormat,
        #[graphql(
            desc = "The IANA time zone of the ISO 8601 time columns (e.g. Europe/Berlin).",
            default = "UTC"
        )]
        time_zone: String,
        #[graphql(
            desc = "Start a CSV with a UTF-8 byte order mark (for spreadsheet programs).",
            default = false
        )]
        bom: bool,
    ) -> async_graphql::Result<ExportLink> {
        let (_, _, lang) = caller(ctx)?;
        let query = task_log_query(filter, order_by, None).gql(lang)?;
        export::link(
            ctx,
            &query,
            format,
            &time_zone,
            bom,
            "/api/task/export/download",
        )
    }

    /// Tasks of new-api's generic task log (Suno music and video tasks) visible to the caller, newest first unless `orderBy` says otherwise. Admins see all tasks; everyone else sees only their own. Times are epoch seconds.
    #[graphql(complexity = "page_rows(&page) * child_complexity + 1")]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the tasks must meet (all of them).")] filter: Option<
            TaskFilterInput,
        >,
        #[graphql(
            desc = "Sort keys, at most 3 (default ID DESC); id is always the last tie-breaker."
        )]
        order_by: Option<Vec<TaskOrder>>,
        #[graphql(desc = "Offset page or keyset cursor (default: offset page 1 of 20).")]
        page: Option<PageInput>,
    ) -> async_graphql::Result<TaskConnection> {
        let (service, viewer, lang) = caller(ctx)?;
        let query = task_log_query(filter, order_by, page).gql(lang)?;
        let look = ctx.look_ahead();
        let wants_total = look.field("totalCount").exists()
            || look.field("pageInfo").field("totalPages").exists();
        // `data` (the upstream's raw answer, possibly large) is read only when selected.
        let wants_data = look.field("nodes").field("data").exists()
            || look.field("edges").field("node").field("data").exists();
        let columns = if wants_data {
            Columns::All
        } else {
            Columns::Lean
        };
        let total = OnceCell::new();
        let page = if wants_total {
            let (page, count) = service
                .page_and_total::<Tasks>(viewer, &query, columns, arrived(ctx))
                .await
                .gql(lang)?;
            let _ = total.set(count);
            page
        } else {
            service
                .list_columns::<Tasks>(viewer, &query, columns)
                .await
                .gql(lang)?
        };
        Ok(TaskConnection {
            page,
            query,
            viewer: viewer.clone(),
            total,
        })
    }

    /// One task of the generic log by row id or by its public taskId (give exactly one). null when there is no such task or the caller may not see it; taskId: the newest visible task with it.
    async fn task(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The row id.")] id: Option<i64>,
        #[graphql(desc = "The public task id.")] task_id: Option<String>,
    ) -> async_graphql::Result<Option<Task<'static>>> {
        find_platform_task(ctx, id, task_id).await
    }

    /// The authenticated caller.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Viewer> {
        let (_, v, _) = caller(ctx)?;
        Ok(viewer_of(v))
    }
}

fn viewer_of(v: &SvcViewer) -> Viewer {
    Viewer {
        id: v.id,
        username: v.username.clone(),
        role: match v.role {
            Role::Guest => UserRole::Guest,
            Role::Common => UserRole::User,
            Role::Admin => UserRole::Admin,
            Role::Root => UserRole::Root,
        },
        is_admin: v.is_admin(),
    }
}

/// One task the caller may see, by `key` (an mjId of at most [`MAX_VALUE`] characters); at most [`MAX_LOOKUPS`](crate::service::MAX_LOOKUPS) an operation.
async fn lookup(
    ctx: &Context<'_>,
    key: TaskKey,
) -> async_graphql::Result<Option<MidjourneyTask<'static>>> {
    let (service, viewer, lang) = caller(ctx)?;
    if let TaskKey::MjId(m) = &key
        && m.chars().count() > MAX_VALUE
    {
        let err = Error::BadFilter(format!("mjId is at most {MAX_VALUE} characters"));
        return Err(to_gql(&err, lang));
    }
    ctx.data::<Lookups>()?.take(1).gql(lang)?;
    let found = service.find_task(viewer, key).await.gql(lang)?;
    Ok(found.map(|record| MidjourneyTask::owned(record, viewer.is_admin())))
}

/// One task of the generic log the caller may see, by row id or task id (exactly one; a task id of at most [`MAX_VALUE`] characters); a lookup like every other.
async fn find_platform_task(
    ctx: &Context<'_>,
    id: Option<i64>,
    task_id: Option<String>,
) -> async_graphql::Result<Option<Task<'static>>> {
    let (service, viewer, lang) = caller(ctx)?;
    let key = match (id, task_id) {
        (Some(id), None) => TaskKey::Id(id),
        (None, Some(t)) => {
            if t.chars().count() > MAX_VALUE {
                let err = Error::BadFilter(format!("taskId is at most {MAX_VALUE} characters"));
                return Err(to_gql(&err, lang));
            }
            TaskKey::MjId(t)
        }
        _ => {
            let err = Error::BadFilter("give exactly one of id and taskId".into());
            return Err(to_gql(&err, lang));
        }
    };
    ctx.data::<Lookups>()?.take(1).gql(lang)?;
    let found = service.find_by_key::<Tasks>(viewer, key).await.gql(lang)?;
    Ok(found.map(|record| Task::owned(record, viewer.is_admin())))
}
