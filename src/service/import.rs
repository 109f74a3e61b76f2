//! Loading tasks from JSON lines (the admin item shape of `/api/mj/`), all or nothing.

use entity::midjourney;
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, DbBackend, Statement,
    TransactionTrait,
};
use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::error::Error;
use crate::service::Service;

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

impl Service {
    /// Inserts every task read from `input` (one JSON object per line; blank lines are
    /// skipped) in one transaction: either all lines are stored or none is. Returns how
    /// many were stored.
    pub async fn import_tasks<R: AsyncBufRead + Unpin>(
        &self,
        input: R,
    ) -> Result<u64, ImportError> {
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
            let task: ImportedTask =
                serde_json::from_str(&line).map_err(|e| ImportError::Line {
                    line: line_no,
                    message: json_problem(&e),
                })?;
            let explicit_id = task.id.is_some();
            task.into_active()
                .insert(&txn)
                .await
                .map_err(|e| ImportError::Line {
                    line: line_no,
                    message: store_problem(&e),
                })?;
            if explicit_id && txn.get_database_backend() == DbBackend::Postgres {
                // An explicit id does not advance PostgreSQL's sequence (SQLite and MySQL
                // move past it by themselves): move it, so later rows get higher ids.
                txn.execute_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT setval(pg_get_serial_sequence('midjourneys', 'id'), \
                     (SELECT COALESCE(MAX(id), 1) FROM midjourneys))",
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
