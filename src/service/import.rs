//! Loading tasks from JSON lines, all or nothing, into either log: the admin item shape of
//! `/api/mj/` into `midjourneys`, that of `/api/task/` into `tasks`.

use entity::midjourney;
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, DbBackend, Statement,
    TransactionTrait,
};
use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::error::Error;
use crate::service::Service;
use crate::service::task_log::store::{self, NewPlatformTask};

/// Longest accepted line, in bytes.
pub const MAX_LINE: usize = 1024 * 1024;

/// One task as `/api/mj/` shows it to admins; absent fields are stored as `""` or `0`.
/// `id`, when given, is kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportedTask {
    pub id: Option<i64>,
    pub user_id: i64,
    pub code: i64,
    pub mj_id: String,
    pub action: String,
    pub prompt: String,
    pub prompt_en: String,
    pub description: String,
    pub state: String,
    pub status: String,
    pub progress: String,
    pub image_url: String,
    pub video_url: String,
    pub video_urls: String,
    pub buttons: String,
    pub properties: String,
    pub submit_time: i64,
    pub start_time: i64,
    pub finish_time: i64,
    pub fail_reason: String,
    pub channel_id: i64,
    pub quota: i64,
}

impl ImportedTask {
    /// The row to insert.
    pub fn into_active(self) -> midjourney::ActiveModel {
        midjourney::ActiveModel {
            id: self.id.map_or(NotSet, Set),
            code: Set(Some(self.code)),
            user_id: Set(Some(self.user_id)),
            action: Set(Some(self.action)),
            mj_id: Set(Some(self.mj_id)),
            prompt: Set(Some(self.prompt)),
            prompt_en: Set(Some(self.prompt_en)),
            description: Set(Some(self.description)),
            state: Set(Some(self.state)),
            submit_time: Set(Some(self.submit_time)),
            start_time: Set(Some(self.start_time)),
            finish_time: Set(Some(self.finish_time)),
            image_url: Set(Some(self.image_url)),
            video_url: Set(Some(self.video_url)),
            video_urls: Set(Some(self.video_urls)),
            status: Set(Some(self.status)),
            progress: Set(Some(self.progress)),
            fail_reason: Set(Some(self.fail_reason)),
            channel_id: Set(Some(self.channel_id)),
            quota: Set(Some(self.quota)),
            buttons: Set(Some(self.buttons)),
            properties: Set(Some(self.properties)),
        }
    }
}

/// Why an import failed.
/// What is wrong with a line's JSON, at its column (serde says "at line 1", which is the
/// line within the one-line document, not the file's).
fn json_problem(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(what, _)| what);
    format!("{text} (column {})", e.column())
}

/// Why a row could not be stored, without the driver's text: a duplicate id is named as
/// such.
fn store_problem(e: &sea_orm::DbErr) -> String {
    let duplicate = matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    );
    if duplicate {
        "a task with this id already exists (leave \"id\" out to get a new one)".into()
    } else {
        tracing::warn!(error = %e, "import: a row could not be stored");
        "could not be stored (the log has the database's reason)".into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error(transparent)]
    Service(#[from] Error),
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
}

/// One task of the generic log as `/api/task/` shows it to admins (`username` is accepted
/// and ignored; `result_url` is kept where new-api keeps it, in the private data); absent
/// fields are stored as `""`, `0`, `{"input":""}` or NULL (`data`). `id`, when given, is kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportedPlatformTask {
    pub id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub task_id: String,
    pub platform: String,
    pub user_id: i64,
    pub group: String,
    pub channel_id: i64,
    pub quota: i64,
    pub action: String,
    pub status: String,
    pub fail_reason: String,
    pub result_url: String,
    pub submit_time: i64,
    pub start_time: i64,
    pub finish_time: i64,
    pub progress: String,
    pub properties: Option<crate::service::task_log::json::Properties>,
    pub username: Option<String>,
    /// Kept as written (key order, number spelling, escapes).
    pub data: Option<Box<serde_json::value::RawValue>>,
}

impl ImportedPlatformTask {
    /// The row to store.
    pub fn into_row(self) -> NewPlatformTask {
        let mut private = serde_json::Map::new();
        if !self.result_url.is_empty() && self.result_url != self.fail_reason {
            private.insert("result_url".into(), self.result_url.into());
        }
        let properties = self.properties.unwrap_or_default();
        NewPlatformTask {
            id: self.id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            task_id: self.task_id,
            platform: self.platform,
            user_id: self.user_id,
            group: self.group,
            channel_id: self.channel_id,
            quota: self.quota,
            action: self.action,
            status: self.status,
            fail_reason: self.fail_reason,
            submit_time: self.submit_time,
            start_time: self.start_time,
            finish_time: self.finish_time,
            progress: self.progress,
            properties: serde_json::to_string(&properties).unwrap_or_default(),
            private_data: serde_json::Value::Object(private).to_string(),
            data: self
                .data
                .map(|d| d.get().to_owned())
                .filter(|d| d != "null"),
        }
    }
}

impl Service {
    /// Inserts every Midjourney task read from `input` (one JSON object per line; blank
    /// lines are skipped) in one transaction: either all lines are stored or none is.
    /// Returns how many were stored.
    pub async fn import_tasks<R: AsyncBufRead + Unpin>(
        &self,
        input: R,
    ) -> Result<u64, ImportError> {
        self.import_lines(input, "midjourneys", |txn, task: ImportedTask| {
            Box::pin(async move { task.into_active().insert(txn).await.map(|_| ()) })
        })
        .await
    }

    /// [`Service::import_tasks`] for the generic task log (`/api/task/`'s item shape).
    pub async fn import_platform_tasks<R: AsyncBufRead + Unpin>(
        &self,
        input: R,
    ) -> Result<u64, ImportError> {
        self.import_lines(input, "tasks", |txn, task: ImportedPlatformTask| {
            Box::pin(store::insert(txn, task.into_row()))
        })
        .await
    }

    /// Reads `input` line by line as `T` and stores each with `store`, in one transaction
    /// on `table`; an explicit id moves PostgreSQL's sequence past it.
    async fn import_lines<R, T, F>(
        &self,
        input: R,
        table: &str,
        store: F,
    ) -> Result<u64, ImportError>
    where
        R: AsyncBufRead + Unpin,
        T: serde::de::DeserializeOwned + HasId,
        F: for<'t> Fn(
            &'t sea_orm::DatabaseTransaction,
            T,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), sea_orm::DbErr>> + Send + 't>,
        >,
    {
        let txn = self.db.begin().await.map_err(Error::from)?;
        let mut lines = input.lines();
        let mut line_no = 0usize;
        let mut stored = 0u64;
        while let Some(line) = lines.next_line().await? {
            line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            if line.len() > MAX_LINE {
                return Err(ImportError::Line {
                    line: line_no,
                    message: format!("longer than {MAX_LINE} bytes"),
                });
            }
            let task: T = serde_json::from_str(&line).map_err(|e| ImportError::Line {
                line: line_no,
                message: json_problem(&e),
            })?;
            let explicit_id = task.has_id();
            store(&txn, task).await.map_err(|e| ImportError::Line {
                line: line_no,
                message: store_problem(&e),
            })?;
            if explicit_id && txn.get_database_backend() == DbBackend::Postgres {
                // An explicit id does not advance PostgreSQL's sequence (SQLite and MySQL
                // move past it by themselves): move it, so later rows get higher ids.
                txn.execute_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                         (SELECT COALESCE(MAX(id), 1) FROM {table}))"
                    ),
                ))
                .await
                .map_err(Error::from)?;
            }
            stored += 1;
        }
        txn.commit().await.map_err(Error::from)?;
        Ok(stored)
    }
}

/// Whether an imported line names its row id.
pub trait HasId {
    fn has_id(&self) -> bool;
}

impl HasId for ImportedTask {
    fn has_id(&self) -> bool {
        self.id.is_some()
    }
}

impl HasId for ImportedPlatformTask {
    fn has_id(&self) -> bool {
        self.id.is_some()
    }
}
