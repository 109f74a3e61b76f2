//! `GET /api/task/self` and `GET /api/task/`: new-api's task-log list routes.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::envelope::{ApiError, SortedSuccess, go_json_response};
use super::task_items::{TaskItem, TaskPageData};
use super::task_params;
use crate::auth;
use crate::error::Error;
use crate::service::{Columns, PageRequest, PlatformTaskQuery, Role, Scope, Tasks};
use crate::state::AppState;

/// `GET /api/task/self`: the caller's own tasks.
pub async fn list_own(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    list(&state, &headers, query.as_deref(), Role::Common).await
}

/// `GET /api/task/`: every user's tasks (admins).
pub async fn list_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    list(&state, &headers, query.as_deref(), Role::Admin).await
}

/// Any other path under `/api/task/`.
pub async fn not_found(headers: HeaderMap) -> ApiError {
    ApiError::sorted(Error::NotFound, auth::lang(&headers))
}

/// A method other than GET on the task routes.
pub async fn method_not_allowed(headers: HeaderMap) -> ApiError {
    ApiError::sorted(Error::MethodNotAllowed, auth::lang(&headers))
}

async fn list(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    min_role: Role,
) -> Result<Response, ApiError> {
    let since = std::time::Instant::now();
    let lang = auth::lang(headers);
    let err = |e| ApiError::sorted(e, lang);
    let viewer = auth::authenticate(&state.service, headers, min_role)
        .await
        .map_err(err)?;
    let admin = min_role >= Role::Admin;
    let params = task_params::parse(query, admin).map_err(err)?;
    let task_query = PlatformTaskQuery {
        scope: if admin { Scope::Visible } else { Scope::Own },
        filter: params.filter,
        order: Vec::new(),
        page: PageRequest::Offset(params.page),
    };
    let (page, total) = state
        .service
        .page_and_total::<Tasks>(&viewer, &task_query, Columns::All, since)
        .await
        .map_err(err)?;
    let names = if admin {
        let ids: Vec<i64> = page.rows.iter().map(|r| r.user_id).collect();
        state.service.usernames(&ids).await.map_err(err)?
    } else {
        Default::default()
    };
    let items = page
        .rows
        .into_iter()
        .map(|r| {
            let name = names.get(&r.user_id).map(String::as_str);
            TaskItem::new(r, admin, name)
        })
        .collect();
    let body = SortedSuccess {
        data: TaskPageData {
            page: params.page.page,
            page_size: params.page.page_size,
            total,
            items,
        },
        message: "",
        success: true,
    };
    Ok(go_json_response(StatusCode::OK, &body))
}
