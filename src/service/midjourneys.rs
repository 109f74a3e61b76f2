//! The Midjourney log (`midjourneys`) as the core sees it.

use std::sync::LazyLock;

use entity::midjourney::{self, Column};
use sea_orm::sea_query::Expr;
use sea_orm::{
    DbBackend, DbErr, EntityTrait, IdenStatic, Iterable, QueryResult, QuerySelect, Select,
};

use crate::service::Service;
use crate::service::filter::{NumFilter, StringFilter, TaskFilter};
use crate::service::log::{BACKENDS, Log, PerBackend};
use crate::service::order::OrderField;
use crate::service::record::TaskRecord;
use crate::service::row::{RowReader, not_null};
use crate::service::stats::GroupBy;

/// new-api's Midjourney task log.
#[derive(Clone, Copy, Debug)]
pub struct Midjourneys;

impl Log for Midjourneys {
    type Entity = midjourney::Entity;
    type Filter = TaskFilter;
    type Field = OrderField;
    type Record = TaskRecord;

    const GROUPINGS: &'static [GroupBy] = &[GroupBy::Status, GroupBy::Action];
    const TABLE: &'static str = "midjourneys";

    fn id_column() -> Column {
        Column::Id
    }

    fn user_column() -> Column {
        Column::UserId
    }

    /// Built once and copied: building lists the 22 columns anew each time.
    fn rows(_backend: DbBackend) -> Select<midjourney::Entity> {
        static ROWS: LazyLock<Select<midjourney::Entity>> = LazyLock::new(midjourney::Entity::find);
        ROWS.clone()
    }

    fn bare() -> Select<midjourney::Entity> {
        static BARE: LazyLock<Select<midjourney::Entity>> =
            LazyLock::new(|| midjourney::Entity::find().select_only());
        BARE.clone()
    }

    /// Lean: without the columns `/api/mj/self` does not show (`code`, `description`,
    /// `state`, `channel_id`, `buttons`, `properties`: JSON text among them), read as NULL.
    fn rows_with(backend: DbBackend, lean: bool) -> Select<midjourney::Entity> {
        if !lean {
            return Self::rows(backend);
        }
        static LEAN: PerBackend<midjourney::Entity> = PerBackend::new(|| BACKENDS.map(lean_rows));
        LEAN.get(backend)
    }

    /// By position: [`Self::rows`] and [`Self::rows_with`] select every column in the
    /// model's order (`Column::iter()`), which saves a lookup by name per column of every
    /// row; on PostgreSQL a column's type is checked by its type id (see [`RowReader`]).
    fn decode(row: &QueryResult) -> Result<midjourney::Model, DbErr> {
        let r = RowReader::new(row);
        Ok(midjourney::Model {
            id: not_null(r.get(0)?, "a task's id")?,
            code: r.get(1)?,
            user_id: r.get(2)?,
            action: r.get(3)?,
            mj_id: r.get(4)?,
            prompt: r.get(5)?,
            prompt_en: r.get(6)?,
            description: r.get(7)?,
            state: r.get(8)?,
            submit_time: r.get(9)?,
            start_time: r.get(10)?,
            finish_time: r.get(11)?,
            image_url: r.get(12)?,
            video_url: r.get(13)?,
            video_urls: r.get(14)?,
            status: r.get(15)?,
            progress: r.get(16)?,
            fail_reason: r.get(17)?,
            channel_id: r.get(18)?,
            quota: r.get(19)?,
            buttons: r.get(20)?,
            properties: r.get(21)?,
        })
    }

    fn record(model: midjourney::Model, service: &Service) -> TaskRecord {
        TaskRecord::from_model(model, service.image_forward_base.as_deref())
    }

    fn record_id(record: &TaskRecord) -> i64 {
        record.id
    }

    fn id_filter(ids: NumFilter) -> TaskFilter {
        TaskFilter {
            id: Some(ids),
            ..Default::default()
        }
    }

    fn owner(record: &TaskRecord) -> i64 {
        record.user_id
    }

    fn finished(record: &TaskRecord) -> bool {
        record.finished()
    }

    fn unfinished() -> TaskFilter {
        TaskFilter {
            finished: Some(false),
            ..Default::default()
        }
    }

    fn key(record: &TaskRecord) -> &str {
        &record.mj_id
    }

    fn keys_filter(keys: &[String]) -> TaskFilter {
        TaskFilter {
            mj_id: Some(StringFilter {
                in_list: Some(keys.to_vec()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// [`Midjourneys::rows_with`]'s lean select on `backend`: every column in the model's order,
/// those `/api/mj/self` does not show as NULL of the column's type.
fn lean_rows(backend: DbBackend) -> Select<midjourney::Entity> {
    let (null_text, null_int) = match backend {
        DbBackend::Postgres => ("CAST(NULL AS text)", "CAST(NULL AS bigint)"),
        DbBackend::MySql => ("CAST(NULL AS CHAR)", "CAST(NULL AS SIGNED)"),
        _ => ("NULL", "NULL"),
    };
    let mut select = Midjourneys::bare();
    for col in midjourney::Column::iter() {
        select = match col {
            Column::Code | Column::ChannelId => {
                select.column_as(Expr::cust(null_int), col.as_str())
            }
            Column::Description | Column::State | Column::Buttons | Column::Properties => {
                select.column_as(Expr::cust(null_text), col.as_str())
            }
            _ => select.column(col),
        };
    }
    select
}
