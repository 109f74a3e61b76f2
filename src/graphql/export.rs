//! Export links: a GraphQL field cannot stream a file, so it hands out a short-lived signed
//! URL a browser can download with a plain link (which cannot carry `Authorization`).

use async_graphql::{Context, Enum, SimpleObject};
use chrono::{DateTime, Utc};

use crate::graphql::context::caller;
use crate::graphql::errors::Gql;
use crate::service::export::{ExportOptions, Exportable, Format};
use crate::service::{LogQuery, time_zone};

/// An export's file format.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180 CSV with a header row; cells that a spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) begin with `'`.
    Csv,
    /// One JSON object per line, values as stored.
    Ndjson,
}

impl From<ExportFormat> for Format {
    fn from(f: ExportFormat) -> Format {
        match f {
            ExportFormat::Csv => Format::Csv,
            ExportFormat::Ndjson => Format::Ndjson,
        }
    }
}

/// A signed download link for one export.
#[derive(SimpleObject)]
pub struct ExportLink {
    /// Where to download it (root-relative: prefix this server's origin). Bound to the caller, the filter, the order and the format; opens until `expiresAt` for as long as the caller may still read these tasks (a ban applies at once).
    pub url: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
    /// The file's format.
    pub format: ExportFormat,
}

/// A link to export what `query` lists, downloaded from `path` (the log's download route).
pub(crate) fn link<L: Exportable>(
    ctx: &Context<'_>,
    query: &LogQuery<L>,
    format: ExportFormat,
    time_zone: &str,
    bom: bool,
    path: &str,
) -> async_graphql::Result<ExportLink> {
    let (service, viewer, lang) = caller(ctx)?;
    let options = ExportOptions {
        format: format.into(),
        tz: time_zone::parse(time_zone).gql(lang)?,
        bom,
    };
    let issued = service.export_link(viewer, query, options).gql(lang)?;
    Ok(ExportLink {
        url: format!("{path}?token={}", issued.token),
        expires_at: DateTime::from_timestamp(issued.expires_at, 0).unwrap_or_default(),
        format,
    })
}
