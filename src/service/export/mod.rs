//! Exports: every row a query would list — the same scope, filter and order — streamed as
//! CSV or NDJSON from one read-only snapshot, in keyset batches (never OFFSET), with
//! constant memory; and the signed links that let a browser download one.
//!
//! The export runs in a task of its own that holds one connection in one transaction
//! (PostgreSQL and MySQL: `REPEATABLE READ, READ ONLY`; SQLite: a read transaction over
//! WAL), so rows written meanwhile by new-api neither repeat nor go missing. It hands the
//! response a batch at a time over a channel of two; when the client goes away the channel
//! closes, the task stops after the batch in hand and the transaction ends.

mod columns;
mod format;
pub mod limits;
pub mod link;

pub use columns::{Cell, Column, Exportable};
pub use format::{Format, iso, neutralise};
pub use limits::{ExportLimits, ExportProgress};
pub use link::{Claims, LinkKey};

use chrono::Utc;
use chrono_tz::Tz;
use sea_orm::sea_query::Expr;
use sea_orm::{
    AccessMode, DatabaseTransaction, DbBackend, IsolationLevel, QuerySelect, TransactionTrait,
};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::service::listing::{keyset_batch, scoped_bare};
use crate::service::log::{LogFilter, LogQuery, SortField};
use crate::service::order;
use crate::service::viewer::Viewer;
use crate::service::{Scope, Service};

/// Rows read per query of an export.
pub const BATCH: u64 = 2_000;

/// How an export is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    pub format: Format,
    /// The zone of the ISO 8601 times.
    pub tz: Tz,
    /// A UTF-8 byte order mark before a CSV (spreadsheet programs then read UTF-8).
    pub bom: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            format: Format::Csv,
            tz: Tz::UTC,
            bom: false,
        }
    }
}

/// A running export: what to call it, and its bytes as they are written. An `Err` chunk
/// means the export failed part way (the response must then end in error, never look
/// complete).
pub struct Export {
    pub file_name: String,
    pub content_type: &'static str,
    /// How many rows it holds.
    pub rows: u64,
    pub chunks: mpsc::Receiver<Result<Vec<u8>, Error>>,
}

/// A signed download link and when it expires (epoch seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedLink {
    pub token: String,
    pub expires_at: i64,
}

impl Service {
    /// Starts exporting what `query` lists for `viewer` (its page is ignored): checks the
    /// filter and the limits, opens the snapshot, counts the rows (refusing more than
    /// `--export-max-rows`), and streams them from a task of its own.
    pub async fn export<L: Exportable>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
        options: ExportOptions,
    ) -> Result<Export, Error> {
        query.filter.validate(viewer)?;
        let order = order::normalize(&query.order)?;
        let slot = self.exports.acquire(viewer.id)?;
        let backend = self.db.get_database_backend();
        let txn = self.snapshot().await?;
        self.count_query();
        let count = scoped_bare(backend, viewer, query)
            .column_as(Expr::cust("COUNT(*)"), "n")
            .into_tuple::<i64>()
            .one(&txn)
            .await?
            .unwrap_or(0)
            .max(0) as u64;
        if count > self.exports.max_rows {
            return Err(Error::ExportTooLarge {
                rows: count,
                max: self.exports.max_rows,
            });
        }
        let columns: Vec<_> = columns::visible::<L>(viewer.is_admin()).collect();
        let writer = format::Writer::new(options.format, options.tz, columns);
        let head = writer.head(options.bom)?;
        let (tx, rx) = mpsc::channel(2);
        let service = self.clone();
        let viewer = viewer.clone();
        let query = LogQuery::<L> {
            order: order.clone(),
            ..query.clone()
        };
        tokio::spawn(async move {
            let _slot = slot;
            if tx.send(Ok(head)).await.is_err() {
                return;
            }
            let fetch = |after: Option<Vec<i64>>| {
                let batch = keyset_batch(backend, &viewer, &query, &order, after.as_deref(), BATCH);
                service.rows_query();
                let txn = &txn;
                async move { batch.all(txn).await }
            };
            let mut next = fetch(None).await;
            loop {
                let rows = match next {
                    Ok(rows) => rows,
                    Err(e) => {
                        let _ = tx.send(Err(Error::from(e))).await;
                        break;
                    }
                };
                let records: Vec<L::Record> =
                    rows.into_iter().map(|m| L::record(m, &service)).collect();
                let Some(last) = records.last() else {
                    break;
                };
                let n = records.len() as u64;
                // The next batch is asked for before this one is written, so the database
                // reads it while this one is formatted.
                let after =
                    (n == BATCH).then(|| order.iter().map(|k| k.field.value(last)).collect());
                let (following, chunk) = tokio::join!(
                    async {
                        match after {
                            Some(after) => Some(fetch(Some(after)).await),
                            None => None,
                        }
                    },
                    async { writer.rows(&records) }
                );
                // A batch that could not be written ends the export in error (the response
                // is cut off, never looks complete).
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
                service.exports.wrote(n);
                match following {
                    Some(rows) => next = rows,
                    None => break,
                }
            }
            let _ = txn.rollback().await;
        });
        let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
        Ok(Export {
            file_name: format!("{}-{stamp}.{}", L::FILE_STEM, options.format.extension()),
            content_type: options.format.content_type(),
            rows: count,
            chunks: rx,
        })
    }

    /// One read-only snapshot on the primary.
    async fn snapshot(&self) -> Result<DatabaseTransaction, Error> {
        let db = self.export_db.as_ref().unwrap_or(&self.db);
        if let Some(pooler) = &self.pooler {
            return Ok(pooler.snapshot(db).await?);
        }
        Ok(match db.get_database_backend() {
            DbBackend::Sqlite => db.begin().await?,
            _ => {
                db.begin_with_config(
                    Some(IsolationLevel::RepeatableRead),
                    Some(AccessMode::ReadOnly),
                )
                .await?
            }
        })
    }

    /// A link to export what `query` lists for `viewer`, valid for `--export-link-ttl`.
    /// The filter is checked now (a link that could only fail is not issued) and again at
    /// download, against the user as they are then.
    pub fn export_link<L: Exportable>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
        options: ExportOptions,
    ) -> Result<IssuedLink, Error> {
        query.filter.validate(viewer)?;
        let order = order::normalize(&query.order)?;
        let expires_at = Utc::now().timestamp() + self.link_ttl_secs as i64;
        let claims = Claims::<L> {
            log: L::TABLE.to_owned(),
            user: viewer.id,
            own: query.scope == Scope::Own,
            filter: query.filter.clone(),
            order,
            format: options.format,
            tz: options.tz.name().to_owned(),
            bom: options.bom,
            exp: expires_at,
        };
        Ok(IssuedLink {
            token: link::sign(&self.link_key, &claims)?,
            expires_at,
        })
    }

    /// Opens a download link: the export it names, for its user as they are now (a ban, a
    /// deletion or a demotion applies to links already issued). `presented` is the user of
    /// credentials sent with it, if any: they must be the link's user.
    pub async fn open_export_link<L: Exportable>(
        &self,
        token: &str,
        presented: Option<i64>,
    ) -> Result<(Viewer, LogQuery<L>, ExportOptions), Error> {
        let claims = link::open::<L>(&self.link_key, token, Utc::now().timestamp())?;
        if presented.is_some_and(|id| id != claims.user) {
            return Err(Error::Forbidden(
                "this download link was issued to another user".into(),
            ));
        }
        let viewer = self
            .current_viewers(&[claims.user])
            .await?
            .remove(&claims.user)
            .unwrap_or(Err(crate::error::AuthError::InvalidToken))
            .map_err(|e| {
                Error::Forbidden(match e {
                    crate::error::AuthError::InvalidToken => {
                        "this link's user no longer exists".to_owned()
                    }
                    other => format!("this link's user can no longer export: {other}"),
                })
            })?;
        let tz = crate::service::time_zone::parse(&claims.tz).map_err(|_| Error::LinkInvalid)?;
        let query = LogQuery::<L> {
            scope: if claims.own {
                Scope::Own
            } else {
                Scope::Visible
            },
            filter: claims.filter,
            order: claims.order,
            ..LogQuery::default()
        };
        Ok((
            viewer,
            query,
            ExportOptions {
                format: claims.format,
                tz,
                bom: claims.bom,
            },
        ))
    }

    /// The exports' progress (metrics).
    pub fn export_progress(&self) -> ExportProgress {
        self.exports.progress()
    }
}
