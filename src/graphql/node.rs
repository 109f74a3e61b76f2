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
use crate::service::{Lookups, node_id};

/// An object with an opaque global id that `node(id:)` reads it back by.
#[derive(Interface)]
#[graphql(field(
    name = "node_id",
    ty = "ID",
    desc = "The opaque global id: `node(id:)` with it returns this object."
))]
pub enum Node {
    /// A task.
    MidjourneyTask(MidjourneyTask),
}

/// The objects these global ids name, in their order, each `None` where there is no such
/// object or the caller may not see it. Every id counts against the operation's lookups.
pub async fn nodes(ctx: &Context<'_>, ids: &[ID]) -> async_graphql::Result<Vec<Option<Node>>> {
    let (service, viewer, lang) = caller(ctx)?;
    ctx.data::<Lookups>()?.take(ids.len()).gql(lang)?;
    let rows = ids
        .iter()
        .map(|id| node_id::decode(id))
        .collect::<Result<Vec<i64>, _>>()
        .gql(lang)?;
    let found = service.find_tasks(viewer, &rows).await.gql(lang)?;
    Ok(found
        .into_iter()
        .map(|t| {
            t.map(|record| {
                Node::MidjourneyTask(MidjourneyTask {
                    record,
                    admin: viewer.is_admin(),
                })
            })
        })
        .collect())
}
