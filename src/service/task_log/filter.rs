//! The task log's filter and sort keys, built from the leaf types and checks every log
//! shares (`service::filter`, `service::filter_sql`).

use entity::task::Column;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, DbBackend};
use serde::Serialize;

use crate::error::Error;
use crate::service::filter::{
    NumFilter, StringFilter, TextFilter, admin_only, check_nums, check_patterns, check_strings,
};
use crate::service::filter_sql::{
    all_of, finished_condition, num_condition, string_condition, string_expr_condition,
    text_condition,
};
use crate::service::log::{LogFilter, SortField};
use crate::service::order::coalesce;
use crate::service::task_log::PlatformTaskRecord;
use crate::service::viewer::Viewer;

/// Every condition a caller can put on the task log; all given parts must hold. NULL
/// columns compare as the value the wire shows (`0`, `""`), as on the Midjourney log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PlatformTaskFilter {
    pub id: Option<NumFilter>,
    pub task_id: Option<StringFilter>,
    pub platform: Option<StringFilter>,
    pub action: Option<StringFilter>,
    pub status: Option<StringFilter>,
    /// Admin only.
    pub user_id: Option<NumFilter>,
    /// Admin only.
    pub channel_id: Option<NumFilter>,
    pub submit_time: Option<NumFilter>,
    pub start_time: Option<NumFilter>,
    pub finish_time: Option<NumFilter>,
    pub updated_at: Option<NumFilter>,
    pub quota: Option<NumFilter>,
    /// `progress = '100%'` (true) or not (false).
    pub finished: Option<bool>,
    pub fail_reason: Option<TextFilter>,
    /// The model the client asked for (`properties.origin_model_name`; "" when absent).
    pub origin_model_name: Option<StringFilter>,
    /// The model sent upstream (`properties.upstream_model_name`; "" when absent).
    pub upstream_model_name: Option<StringFilter>,
    /// new-api's own SQL semantics, for its legacy routes: a NULL column never matches a
    /// leaf on it (instead of comparing as `0` or `""`).
    pub legacy_nulls: bool,
    pub and: Vec<PlatformTaskFilter>,
    pub or: Vec<PlatformTaskFilter>,
    pub not: Option<Box<PlatformTaskFilter>>,
}

impl LogFilter for PlatformTaskFilter {
    type Record = PlatformTaskRecord;

    fn pins_rows(&self) -> bool {
        self.id.as_ref().is_some_and(NumFilter::pins)
            || self.task_id.as_ref().is_some_and(StringFilter::pins)
    }

    fn leaves_match(&self, r: &PlatformTaskRecord) -> bool {
        // new-api's rule for its legacy routes: a NULL never matches; records hold no NULLs,
        // so that filter is only ever evaluated in SQL (the live subscriptions use GraphQL's).
        let nums = [
            r.id,
            r.user_id,
            r.channel_id,
            r.submit_time,
            r.start_time,
            r.finish_time,
            r.updated_at,
            r.quota,
        ];
        let strings = [
            r.task_id.as_str(),
            r.platform.as_str(),
            r.action.as_str(),
            r.status.as_str(),
        ];
        self.nums()
            .iter()
            .zip(nums)
            .all(|((_, _, f, _), x)| f.as_ref().is_none_or(|f| f.holds(x)))
            && self
                .strings()
                .iter()
                .zip(strings)
                .all(|((_, _, f), x)| f.as_ref().is_none_or(|f| f.holds(x)))
            && self
                .fail_reason
                .as_ref()
                .is_none_or(|f| f.holds(&r.fail_reason))
            && self.finished.is_none_or(|v| r.finished() == v)
            && self
                .origin_model_name
                .as_ref()
                .is_none_or(|f| f.holds(&r.properties.origin_model_name))
            && self
                .upstream_model_name
                .as_ref()
                .is_none_or(|f| f.holds(&r.properties.upstream_model_name))
    }

    fn validate_leaves(&self, viewer: &Viewer) -> Result<(), Error> {
        admin_only(
            viewer,
            &[
                ("userId", self.user_id.is_some()),
                ("channelId", self.channel_id.is_some()),
            ],
        )?;
        check_nums(&self.nums().map(|(name, _, f, _)| (name, f)))?;
        check_strings(&self.strings().map(|(name, _, f)| (name, f)))?;
        check_strings(&[
            ("originModelName", &self.origin_model_name),
            ("upstreamModelName", &self.upstream_model_name),
        ])?;
        check_patterns(&[("failReason", &self.fail_reason)])
    }

    fn leaves_condition(&self, backend: DbBackend) -> Condition {
        let mut all = all_of();
        for (_, col, f, nullable) in self.nums() {
            if let Some(f) = f {
                if self.legacy_nulls && nullable {
                    all = all.add(col.is_not_null());
                }
                all = all.add(num_condition(col, f, nullable));
            }
        }
        for (_, col, f) in self.strings() {
            if let Some(f) = f {
                if self.legacy_nulls {
                    all = all.add(col.is_not_null());
                }
                all = all.add(string_condition(backend, col, f));
            }
        }
        if let Some(f) = &self.fail_reason {
            all = all.add(text_condition(backend, Column::FailReason, f));
        }
        for (key, f) in [
            ("origin_model_name", &self.origin_model_name),
            ("upstream_model_name", &self.upstream_model_name),
        ] {
            if let Some(f) = f {
                all = all.add(string_expr_condition(backend, &property(backend, key), f));
            }
        }
        if let Some(finished) = self.finished {
            all = all.add(finished_condition(backend, Column::Progress, finished));
        }
        all
    }

    fn branches(&self) -> (&[Self], &[Self], Option<&Self>) {
        (&self.and, &self.or, self.not.as_deref())
    }

    fn set_and(&mut self, all: Vec<Self>) {
        self.and = all;
    }
}

impl PlatformTaskFilter {
    /// The number leaves: GraphQL name, column, filter, whether the column may be NULL.
    fn nums(&self) -> [(&'static str, Column, &Option<NumFilter>, bool); 8] {
        [
            ("id", Column::Id, &self.id, false),
            ("userId", Column::UserId, &self.user_id, true),
            ("channelId", Column::ChannelId, &self.channel_id, true),
            ("submitTime", Column::SubmitTime, &self.submit_time, true),
            ("startTime", Column::StartTime, &self.start_time, true),
            ("finishTime", Column::FinishTime, &self.finish_time, true),
            ("updatedAt", Column::UpdatedAt, &self.updated_at, true),
            ("quota", Column::Quota, &self.quota, true),
        ]
    }

    /// The exact string leaves: GraphQL name, column, filter.
    fn strings(&self) -> [(&'static str, Column, &Option<StringFilter>); 4] {
        [
            ("taskId", Column::TaskId, &self.task_id),
            ("platform", Column::Platform, &self.platform),
            ("action", Column::Action, &self.action),
            ("status", Column::Status, &self.status),
        ]
    }
}

/// The keys new-api decodes from `properties`: one holding something other than a string or
/// `null` makes the whole column read as empty (Go's decoding into its struct fails).
const PROPERTY_KEYS: [&str; 3] = ["input", "upstream_model_name", "origin_model_name"];

/// The string `properties.<key>` holds, as SQL on `backend`, with the meaning the records
/// have: `""` when the column is NULL, not JSON, not an object, the key is absent or null,
/// or any of the three keys holds something other than a string. Keys are matched as
/// new-api writes them (lowercase, once each), which is how every row it writes reads back.
fn property(backend: DbBackend, key: &str) -> String {
    type KeyType = fn(&str) -> String;
    let (json, typeof_key, string, null, value): (String, KeyType, &str, &str, String) =
        match backend {
            DbBackend::Postgres => (
                "json_typeof(\"tasks\".\"properties\") = 'object'".to_owned(),
                |k: &str| format!("json_typeof(\"tasks\".\"properties\" -> '{k}')"),
                "'string'",
                "'null'",
                format!("\"tasks\".\"properties\" ->> '{key}'"),
            ),
            DbBackend::MySql => (
                "JSON_VALID(`tasks`.`properties`) AND JSON_TYPE(`tasks`.`properties`) = 'OBJECT'"
                    .to_owned(),
                |k: &str| format!("JSON_TYPE(JSON_EXTRACT(`tasks`.`properties`, '$.{k}'))"),
                "'STRING'",
                "'NULL'",
                format!("JSON_UNQUOTE(JSON_EXTRACT(`tasks`.`properties`, '$.{key}'))"),
            ),
            _ => (
                "json_valid(CAST(\"tasks\".\"properties\" AS TEXT)) \
             AND json_type(CAST(\"tasks\".\"properties\" AS TEXT)) = 'object'"
                    .to_owned(),
                |k: &str| format!("json_type(CAST(\"tasks\".\"properties\" AS TEXT), '$.{k}')"),
                "'text'",
                "'null'",
                format!("json_extract(CAST(\"tasks\".\"properties\" AS TEXT), '$.{key}')"),
            ),
        };
    let strings_only: Vec<String> = PROPERTY_KEYS
        .iter()
        .map(|k| format!("COALESCE({}, {null}) IN ({string}, {null})", typeof_key(k)))
        .collect();
    format!(
        "COALESCE(CASE WHEN {json} AND {} AND {} = {string} THEN {value} END, '')",
        strings_only.join(" AND "),
        typeof_key(key)
    )
}

/// A column the task log can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum PlatformOrderField {
    Id,
    SubmitTime,
    FinishTime,
    UpdatedAt,
    Quota,
}

impl SortField for PlatformOrderField {
    type Record = PlatformTaskRecord;
    const ID: Self = PlatformOrderField::Id;

    fn expr(self) -> Expr {
        match self {
            PlatformOrderField::Id => Expr::col(Column::Id),
            PlatformOrderField::SubmitTime => coalesce(Column::SubmitTime),
            PlatformOrderField::FinishTime => coalesce(Column::FinishTime),
            PlatformOrderField::UpdatedAt => coalesce(Column::UpdatedAt),
            PlatformOrderField::Quota => coalesce(Column::Quota),
        }
    }

    fn value(self, r: &PlatformTaskRecord) -> i64 {
        match self {
            PlatformOrderField::Id => r.id,
            PlatformOrderField::SubmitTime => r.submit_time,
            PlatformOrderField::FinishTime => r.finish_time,
            PlatformOrderField::UpdatedAt => r.updated_at,
            PlatformOrderField::Quota => r.quota,
        }
    }
}
