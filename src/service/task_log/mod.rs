//! new-api's generic task log (`tasks`: Suno and the video platforms) as the core sees it:
//! its record, filter, sort keys and JSON columns. Scoping, pages, counts and lookups are
//! the core's ([`Log`]), shared with the Midjourney log.

pub mod demo;
mod filter;
pub mod json;
mod record;
pub mod store;

pub use filter::{PlatformOrderField, PlatformTaskFilter};
pub use record::PlatformTaskRecord;

use std::sync::LazyLock;

use entity::task::{self, Column};
use sea_orm::sea_query::Expr;
use sea_orm::{
    DbBackend, DbErr, EntityTrait, IdenStatic, Iterable, QueryResult, QuerySelect, Select,
};

use crate::service::Service;
use crate::service::filter::{NumFilter, StringFilter};
use crate::service::log::{BACKENDS, Log, LogQuery, PerBackend};
use crate::service::row::{RowReader, not_null};
use crate::service::stats::GroupBy;

/// new-api's generic task log.
#[derive(Clone, Copy, Debug)]
pub struct Tasks;

/// What to list from the task log.
pub type PlatformTaskQuery = LogQuery<Tasks>;

impl Log for Tasks {
    type Entity = task::Entity;
    type Filter = PlatformTaskFilter;
    type Field = PlatformOrderField;
    type Record = PlatformTaskRecord;

    const GROUPINGS: &'static [GroupBy] = &[GroupBy::Status, GroupBy::Action, GroupBy::Platform];
    const TABLE: &'static str = "tasks";

    fn id_column() -> Column {
        Column::Id
    }

    fn user_column() -> Column {
        Column::UserId
    }

    /// Every column by name (older tables lack none the model reads; forks' extra columns
    /// are not selected); the JSON columns as bytes: SQLite returns what is stored (BLOB or
    /// TEXT), PostgreSQL's `json` is converted from its text, MySQL's cast to binary.
    fn rows(backend: DbBackend) -> Select<task::Entity> {
        Self::rows_with(backend, false)
    }

    fn bare() -> Select<task::Entity> {
        static BARE: LazyLock<Select<task::Entity>> =
            LazyLock::new(|| task::Entity::find().select_only());
        BARE.clone()
    }

    /// Lean: `data` (the upstream's raw answer, possibly large) read as NULL.
    fn rows_with(backend: DbBackend, lean: bool) -> Select<task::Entity> {
        static ALL: PerBackend<task::Entity> =
            PerBackend::new(|| BACKENDS.map(|b| build_rows(b, false)));
        static LEAN: PerBackend<task::Entity> =
            PerBackend::new(|| BACKENDS.map(|b| build_rows(b, true)));
        if lean {
            LEAN.get(backend)
        } else {
            ALL.get(backend)
        }
    }

    /// By position: [`Self::rows`] and [`Self::rows_with`] select every column in the
    /// model's order ([`build_rows`]); on PostgreSQL a column's type is checked by its type
    /// id (see [`RowReader`]).
    fn decode(row: &QueryResult) -> Result<task::Model, DbErr> {
        let r = RowReader::new(row);
        Ok(task::Model {
            id: not_null(r.get(0)?, "a task's id")?,
            created_at: r.get(1)?,
            updated_at: r.get(2)?,
            task_id: r.get(3)?,
            platform: r.get(4)?,
            user_id: r.get(5)?,
            group: r.get(6)?,
            channel_id: r.get(7)?,
            quota: r.get(8)?,
            action: r.get(9)?,
            status: r.get(10)?,
            fail_reason: r.get(11)?,
            submit_time: r.get(12)?,
            start_time: r.get(13)?,
            finish_time: r.get(14)?,
            progress: r.get(15)?,
            properties: r.get(16)?,
            private_data: r.get(17)?,
            data: r.get(18)?,
        })
    }

    fn record(model: task::Model, _service: &Service) -> PlatformTaskRecord {
        PlatformTaskRecord::from_model(model)
    }

    fn record_id(record: &PlatformTaskRecord) -> i64 {
        record.id
    }

    fn id_filter(ids: NumFilter) -> PlatformTaskFilter {
        PlatformTaskFilter {
            id: Some(ids),
            ..Default::default()
        }
    }

    fn owner(record: &PlatformTaskRecord) -> i64 {
        record.user_id
    }

    fn finished(record: &PlatformTaskRecord) -> bool {
        record.finished()
    }

    fn unfinished() -> PlatformTaskFilter {
        PlatformTaskFilter {
            finished: Some(false),
            ..Default::default()
        }
    }

    fn key(record: &PlatformTaskRecord) -> &str {
        &record.task_id
    }

    fn updated_at_column() -> Option<Column> {
        Some(Column::UpdatedAt)
    }

    fn updated_at(record: &PlatformTaskRecord) -> i64 {
        record.updated_at
    }

    fn keys_filter(keys: &[String]) -> PlatformTaskFilter {
        PlatformTaskFilter {
            task_id: Some(StringFilter {
                in_list: Some(keys.to_vec()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// [`Tasks::rows_with`]'s select on `backend`, built: every column of the model in its
/// order (`Column::iter()`; [`Tasks::decode`] reads them by position), the JSON columns
/// (`properties`, `private_data`, `data`) as bytes on every backend.
fn build_rows(backend: DbBackend, lean: bool) -> Select<task::Entity> {
    let mut select = Tasks::bare();
    for col in Column::iter() {
        let name = col.as_str();
        select = match col {
            Column::Data if lean => {
                let null = match backend {
                    DbBackend::Postgres => "CAST(NULL AS bytea)",
                    DbBackend::MySql => "CAST(NULL AS BINARY)",
                    _ => "NULL",
                };
                select.column_as(Expr::cust(null), name)
            }
            Column::Properties | Column::PrivateData | Column::Data => {
                let expr = match backend {
                    DbBackend::Postgres => {
                        format!("convert_to(CAST(\"tasks\".\"{name}\" AS text), 'UTF8')")
                    }
                    DbBackend::MySql => format!("CAST(`tasks`.`{name}` AS BINARY)"),
                    _ => format!("\"tasks\".\"{name}\""),
                };
                select.column_as(Expr::cust(expr), name)
            }
            _ => select.column(col),
        };
    }
    select
}
