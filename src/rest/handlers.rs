//! The two list handlers.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use serde::Serialize;

use super::envelope::{ApiError, Success, success};
use super::items::{AdminItem, ListData, SelfItem};
use super::params;
use crate::auth;
use crate::service::{Columns, PageRequest, Role, Scope, TaskQuery, TaskRecord};
use crate::state::AppState;

type ListResult<T> = Result<Json<Success<ListData<T>>>, ApiError>;

/// `GET /api/mj/self`: the caller's own tasks.
pub async fn list_own(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ListResult<SelfItem> {
    list(&state, &headers, query.as_deref(), Role::Common).await
}

/// `GET /api/mj/`: every task (admins).
pub async fn list_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ListResult<AdminItem> {
    list(&state, &headers, query.as_deref(), Role::Admin).await
}

async fn list<T: From<TaskRecord> + Serialize>(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    min_role: Role,
) -> ListResult<T> {
    let since = std::time::Instant::now();
    let lang = auth::lang(headers);
    let err = |e| ApiError::new(e, lang);
    let viewer = auth::authenticate(&state.service, headers, min_role)
        .await
        .map_err(err)?;
    let params = params::parse(query, min_role >= Role::Admin).map_err(err)?;
    let scope = if min_role >= Role::Admin {
        Scope::Visible
    } else {
        Scope::Own
    };
    let task_query = TaskQuery {
        scope,
        filter: params.filter,
        order: Vec::new(),
        page: PageRequest::Offset(params.page),
    };
    // `/api/mj/self` shows 15 fields: the page reads only those columns.
    let columns = if min_role >= Role::Admin {
        Columns::All
    } else {
        Columns::Lean
    };
    let (page, total) = state
        .service
        .page_and_total(&viewer, &task_query, columns, since)
        .await
        .map_err(err)?;
    Ok(success(ListData {
        items: page.rows.into_iter().map(T::from).collect(),
        total,
        page: params.page.page,
        page_size: params.page.page_size,
    }))
}
