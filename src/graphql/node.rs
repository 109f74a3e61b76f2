//! Relay's Global Object Identification: the `Node` interface and the `node(id:)` /
//! `nodes(ids:)` lookups behind the query root's fields of those names.
//!
//! The interface's field is `nodeId`, not `id`: `MidjourneyTask.id` is the integer row id the
//! REST routes and existing clients use, so the opaque global id has its own name (as in
//! PostGraphile and pg_graphql). Relay reads it with `schemaConfig.nodeInterfaceIdField:
//! "nodeId"` in the compiler's configuration and `getDataID` in the environment.

use async_graphql::{Context, ID, Interface};

use crate::graphql::context::caller;
use crate::graphql::errors::Gql;
use crate::graphql::task::MidjourneyTask;
use crate::graphql::task_log::Task;
use crate::service::node_id::NodeKind;
use crate::service::{Lookups, Midjourneys, Tasks, node_id};

/// An object with an opaque global id that `node(id:)` reads it back by.
#[derive(Interface)]
#[graphql(field(
    name = "node_id",
    ty = "ID",
    desc = "The opaque global id: `node(id:)` with it returns this object."
))]
pub enum Node {
    /// A Midjourney task.
    MidjourneyTask(MidjourneyTask<'static>),
    /// A task of the generic log (Suno, video).
    Task(Task<'static>),
}

/// The objects these global ids name, in their order, each `None` where there is no such object or the caller may not see it. Every id counts against the operation's lookups.
pub async fn nodes(ctx: &Context<'_>, ids: &[ID]) -> async_graphql::Result<Vec<Option<Node>>> {
    let (service, viewer, lang) = caller(ctx)?;
    ctx.data::<Lookups>()?.take(ids.len()).gql(lang)?;
    let named = ids
        .iter()
        .map(|id| node_id::decode_any(id))
        .collect::<Result<Vec<(NodeKind, i64)>, _>>()
        .gql(lang)?;
    let of = |kind| -> Vec<i64> {
        named
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, id)| *id)
            .collect()
    };
    let (mj_rows, task_rows) = (of(NodeKind::Midjourney), of(NodeKind::Task));
    // One query per log named (none for a log no id names).
    let mj = if mj_rows.is_empty() {
        Vec::new()
    } else {
        service
            .find_by_ids::<Midjourneys>(viewer, &mj_rows)
            .await
            .gql(lang)?
    };
    let tasks = if task_rows.is_empty() {
        Vec::new()
    } else {
        service
            .find_by_ids::<Tasks>(viewer, &task_rows)
            .await
            .gql(lang)?
    };
    let (mut mj, mut tasks) = (mj.into_iter(), tasks.into_iter());
    let admin = viewer.is_admin();
    Ok(named
        .iter()
        .map(|(kind, _)| match kind {
            NodeKind::Midjourney => mj
                .next()
                .flatten()
                .map(|record| Node::MidjourneyTask(MidjourneyTask::owned(record, admin))),
            NodeKind::Task => tasks
                .next()
                .flatten()
                .map(|record| Node::Task(Task::owned(record, admin))),
        })
        .collect())
}
