//! The export routes: `GET /api/mj/self/export`, `GET /api/mj/export`,
//! `GET /api/task/self/export`, `GET /api/task/export` (the list routes' query parameters,
//! plus `format`, `tz` and `bom`), and the signed download links GraphQL hands out
//! (`GET /api/mj/export/download?token=…`, `GET /api/task/export/download?token=…`).
//! Every rule (scope, filter, limits, the snapshot, link checks) is the service's.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::envelope::ApiError;
use super::{params, task_params};
use crate::auth;
use crate::error::{Error, Lang};
use crate::service::export::{Export, ExportOptions, Exportable, Format};
use crate::service::{
    Log, LogQuery, Midjourneys, PlatformTaskFilter, Role, Scope, TaskFilter, Tasks, Viewer,
    time_zone,
};
use crate::state::AppState;

/// Which envelope a log's routes refuse in: the Midjourney routes the documented one, the
/// task routes new-api's sorted one.
fn refusal<L: Exportable>(error: Error, lang: Lang) -> ApiError {
    if L::TABLE == Tasks::TABLE {
        ApiError::sorted(error, lang)
    } else {
        ApiError::new(error, lang)
    }
}

/// `format` (`csv`, `ndjson`; default csv), `tz` (an IANA name; default UTC) and `bom`
/// (`1`/`true`: a UTF-8 BOM before a CSV) from the query string.
fn options(query: Option<&str>) -> Result<ExportOptions, Error> {
    let pairs = params::pairs(query.unwrap_or(""))?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    Ok(ExportOptions {
        format: get("format")
            .map(Format::parse)
            .transpose()?
            .unwrap_or_default(),
        tz: time_zone::parse(get("tz").unwrap_or("UTC"))?,
        bom: match get("bom") {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(_) => return Err(Error::BadFilter("bom is true or false".into())),
        },
    })
}

/// `GET /api/mj/self/export`: the caller's own Midjourney tasks.
pub async fn mj_own(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    export_route::<Midjourneys>(&state, &headers, query.as_deref(), Role::Common, mj_filter).await
}

/// `GET /api/mj/export`: every Midjourney task (admins).
pub async fn mj_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    export_route::<Midjourneys>(&state, &headers, query.as_deref(), Role::Admin, mj_filter).await
}

/// `GET /api/task/self/export`: the caller's own tasks of the generic log.
pub async fn task_own(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    export_route::<Tasks>(
        &state,
        &headers,
        query.as_deref(),
        Role::Common,
        task_filter,
    )
    .await
}

/// `GET /api/task/export`: every task of the generic log (admins).
pub async fn task_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    export_route::<Tasks>(&state, &headers, query.as_deref(), Role::Admin, task_filter).await
}

/// An export of log `L` for the caller (`min_role` decides the scope), its filter read from
/// the list route's parameters by `parse`.
async fn export_route<L: Exportable>(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    min_role: Role,
    parse: fn(Option<&str>, bool) -> Result<L::Filter, Error>,
) -> Result<Response, ApiError> {
    let lang = auth::lang(headers);
    let err = |e| refusal::<L>(e, lang);
    let viewer = auth::authenticate(&state.service, headers, min_role)
        .await
        .map_err(err)?;
    let admin = min_role >= Role::Admin;
    let filter = parse(query, admin).map_err(err)?;
    let options = options(query).map_err(err)?;
    let query = LogQuery::<L> {
        scope: scope(admin),
        filter,
        ..LogQuery::default()
    };
    run(state, &viewer, &query, options).await.map_err(err)
}

fn mj_filter(query: Option<&str>, admin: bool) -> Result<TaskFilter, Error> {
    Ok(params::parse(query, admin)?.filter)
}

fn task_filter(query: Option<&str>, admin: bool) -> Result<PlatformTaskFilter, Error> {
    Ok(task_params::parse(query, admin)?.filter)
}

fn scope(admin: bool) -> Scope {
    if admin { Scope::Visible } else { Scope::Own }
}

/// `GET /api/mj/export/download?token=…`: a signed Midjourney export link.
pub async fn mj_download(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    download::<Midjourneys>(&state, &headers, query.as_deref()).await
}

/// `GET /api/task/export/download?token=…`: a signed task-log export link.
pub async fn task_download(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    download::<Tasks>(&state, &headers, query.as_deref()).await
}

async fn download<L: Exportable>(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let lang = auth::lang(headers);
    let err = |e| refusal::<L>(e, lang);
    let pairs = params::pairs(query.unwrap_or("")).map_err(err)?;
    let token = pairs
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .ok_or(Error::LinkInvalid)
        .map_err(err)?;
    // Credentials sent along must be the link's user's (a link is not a way to borrow
    // another user's export).
    let presented = if auth::has_credentials(headers) {
        let viewer = auth::authenticate(&state.service, headers, Role::Common)
            .await
            .map_err(err)?;
        Some(viewer.id)
    } else {
        None
    };
    let (viewer, query, options) = state
        .service
        .open_export_link::<L>(token, presented)
        .await
        .map_err(err)?;
    run(state, &viewer, &query, options).await.map_err(err)
}

/// Starts the export and streams it as the response body.
async fn run<L: Exportable>(
    state: &AppState,
    viewer: &Viewer,
    query: &LogQuery<L>,
    options: ExportOptions,
) -> Result<Response, Error> {
    let export = state.service.export(viewer, query, options).await?;
    Ok(respond(export))
}

fn respond(export: Export) -> Response {
    let Export {
        file_name,
        content_type,
        rows,
        chunks,
    } = export;
    let stream = futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-export-rows", HeaderValue::from(rows));
    response
}
