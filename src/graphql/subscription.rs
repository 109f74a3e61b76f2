//! The subscription root: live task events, a thin layer over [`crate::service::live`].

use async_graphql::{Context, Enum, SimpleObject, Subscription as GqlSubscription};
use futures_util::Stream;

use crate::error::Error;
use crate::graphql::context::{caller, request};
use crate::graphql::errors::{Gql, to_gql};
use crate::graphql::inputs::MidjourneyTaskFilter;
use crate::graphql::task::MidjourneyTask;
use crate::graphql::task_log::{Task, TaskFilterInput};
use crate::service::live::{EventKind, LiveLog, LiveRequest, LogEvent};
use crate::service::{Midjourneys, Tasks};

/// The root of every subscription.
pub struct Subscription;

/// What happened to a task (of either log).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MidjourneyTaskEventKind {
    /// The task as it was when the subscription started (`initialSnapshot: true`).
    Snapshot,
    /// A new task appeared.
    Created,
    /// An unfinished task changed: status, progress, image, …
    Updated,
    /// The task reached progress 100% (status SUCCESS or FAILURE).
    Finished,
}

/// One change to a task, with the task as it is now.
#[derive(SimpleObject)]
pub struct MidjourneyTaskEvent {
    /// What happened.
    pub kind: MidjourneyTaskEventKind,
    /// The task after the change.
    pub task: MidjourneyTask<'static>,
}

fn event(e: LogEvent<Midjourneys>, admin: bool) -> MidjourneyTaskEvent {
    MidjourneyTaskEvent {
        kind: kind(e.kind),
        task: MidjourneyTask::owned(e.task, admin),
    }
}

/// Live progress. Needs the two auth headers: on a WebSocket (`graphql-transport-ws`, or the legacy `graphql-ws`) in the `connection_init` payload, over Server-Sent Events as request headers.
#[GqlSubscription]
impl Subscription {
    /// Changes to the tasks the caller may see (admins: all; everyone else: their own), as the server notices them (it polls the table about once a second). Only the latest state of each poll is sent, so a task may skip a step. With `mjIds` the subscription completes once every listed task has finished. It ends with an error when the caller is banned or deleted (UNAUTHENTICATED / FORBIDDEN) or reads too slowly (SLOW_CONSUMER), or when live updates were interrupted and changes may have been missed (FEED_INTERRUPTED: subscribe again, with `initialSnapshot`), and completes when the server shuts down.
    async fn midjourney_task_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the tasks must meet (all of them), as for midjourneyTasks.")]
        filter: Option<MidjourneyTaskFilter>,
        #[graphql(
            desc = "Only these upstream task ids (1 to 100); the subscription completes when all of them have finished."
        )]
        mj_ids: Option<Vec<String>>,
        #[graphql(
            desc = "Start with the matching unfinished tasks (the newest 100) as SNAPSHOT events.",
            default = false
        )]
        initial_snapshot: bool,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<MidjourneyTaskEvent>> + use<>>
    {
        let (_, _, lang) = caller(ctx)?;
        let filter = filter
            .map(MidjourneyTaskFilter::into_service)
            .transpose()
            .gql(lang)?
            .unwrap_or_default();
        let live_request = LiveRequest::<Midjourneys> {
            filter,
            keys: mj_ids,
            snapshot: initial_snapshot,
        };
        events(ctx, live_request, event).await
    }

    /// Changes to the tasks of the generic log (Suno, video) the caller may see, as for `midjourneyTaskEvents`: CREATED, UPDATED, FINISHED (and SNAPSHOT with `initialSnapshot`), ending with an error when the caller is banned or deleted, or reads too slowly. With `taskIds` it completes once every listed task has finished.
    async fn task_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the tasks must meet (all of them), as for tasks.")]
        filter: Option<TaskFilterInput>,
        #[graphql(
            desc = "Only these public task ids (1 to 100); the subscription completes when all of them have finished."
        )]
        task_ids: Option<Vec<String>>,
        #[graphql(
            desc = "Start with the matching unfinished tasks (the newest 100) as SNAPSHOT events.",
            default = false
        )]
        initial_snapshot: bool,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<TaskEvent>> + use<>> {
        let (_, _, lang) = caller(ctx)?;
        let filter = filter
            .map(TaskFilterInput::into_service)
            .transpose()
            .gql(lang)?
            .unwrap_or_default();
        let live_request = LiveRequest::<Tasks> {
            filter,
            keys: task_ids,
            snapshot: initial_snapshot,
        };
        events(ctx, live_request, task_event).await
    }
}

/// One change to a task of the generic log, with the task as it is now.
#[derive(SimpleObject)]
pub struct TaskEvent {
    /// What happened.
    pub kind: MidjourneyTaskEventKind,
    /// The task after the change.
    pub task: Task<'static>,
}

fn kind(k: EventKind) -> MidjourneyTaskEventKind {
    match k {
        EventKind::Snapshot => MidjourneyTaskEventKind::Snapshot,
        EventKind::Created => MidjourneyTaskEventKind::Created,
        EventKind::Updated => MidjourneyTaskEventKind::Updated,
        EventKind::Finished => MidjourneyTaskEventKind::Finished,
    }
}

fn task_event(e: LogEvent<Tasks>, admin: bool) -> TaskEvent {
    TaskEvent {
        kind: kind(e.kind),
        task: Task::owned(e.task, admin),
    }
}

/// The events of a subscription to log `L`, each shaped by `shape` (with whether the caller is an admin); the subscription holds one of its connection's slots while it is open.
async fn events<L: LiveLog, E: Send + 'static>(
    ctx: &Context<'_>,
    live_request: LiveRequest<L>,
    shape: fn(LogEvent<L>, bool) -> E,
) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<E>> + use<L, E>> {
    let (_, viewer, lang) = caller(ctx)?;
    let req = request(ctx)?;
    let slot = req.connection.open().gql(lang)?;
    let connection = req.connection.clone();
    let sub = req.live.subscribe(viewer, live_request).await.gql(lang)?;
    let admin = viewer.is_admin();
    Ok(futures_util::stream::unfold(
        Some((sub, slot)),
        move |open| {
            let connection = connection.clone();
            async move {
                let (mut sub, slot) = open?;
                match sub.next().await {
                    Some(Ok(e)) => Some((Ok(shape(e, admin)), Some((sub, slot)))),
                    Some(Err(e)) => {
                        if matches!(e, Error::SlowConsumer) {
                            connection.fell_behind();
                        }
                        Some((Err(to_gql(&e, lang)), None))
                    }
                    None => None,
                }
            }
        },
    ))
}
