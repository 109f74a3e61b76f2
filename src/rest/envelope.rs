//! The legacy JSON envelopes: on `/api/mj`, `{"success":true,"message":"","data":…}` and
//! `{"success":false,"message":"…"}`; on `/api/task`, whose new-api handlers answer a Go
//! map, the same keys sorted and Go's string escapes (`{"message":"…","success":false}`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{Error, Lang};

#[derive(Serialize)]
pub struct Success<T> {
    success: bool,
    message: &'static str,
    data: T,
}

/// A successful answer carrying `data`.
pub fn success<T: Serialize>(data: T) -> Json<Success<T>> {
    Json(Success {
        success: true,
        message: "",
        data,
    })
}

#[derive(Serialize)]
struct Failure {
    success: bool,
    message: String,
}

/// The key order of an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `/api/mj`: `success`, `message`, `data` (a Go struct's order).
    Mj,
    /// `/api/task`: keys sorted (a Go map), Go's string escapes.
    Sorted,
}

/// An error rendered as the legacy failure envelope, in the caller's language.
#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    pub lang: Lang,
    pub shape: Shape,
}

impl ApiError {
    pub fn new(error: impl Into<Error>, lang: Lang) -> ApiError {
        ApiError {
            error: error.into(),
            lang,
            shape: Shape::Mj,
        }
    }

    /// The same error in the task routes' envelope.
    pub fn sorted(error: impl Into<Error>, lang: Lang) -> ApiError {
        ApiError {
            shape: Shape::Sorted,
            ..ApiError::new(error, lang)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self.shape {
            Shape::Mj => (status, Json(failure(&self.error, self.lang))).into_response(),
            Shape::Sorted => {
                let body = SortedFailure {
                    message: self.error.message(self.lang),
                    success: false,
                };
                go_json_response(status, &body)
            }
        }
    }
}

#[derive(Serialize)]
struct SortedFailure {
    message: String,
    success: bool,
}

/// The task routes' success envelope: `data`, `message`, `success`.
#[derive(Serialize)]
pub struct SortedSuccess<T> {
    pub data: T,
    pub message: &'static str,
    pub success: bool,
}

/// `body` encoded as Go would, with new-api's content type.
pub fn go_json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )],
        super::go_json::to_vec(body),
    )
        .into_response()
}

fn failure(error: &Error, lang: Lang) -> Failure {
    Failure {
        success: false,
        message: error.message(lang),
    }
}

/// The failure envelope's bytes, for answers written below the router (a connection refused
/// at the cap).
pub fn failure_body(error: &Error, lang: Lang) -> Vec<u8> {
    serde_json::to_vec(&failure(error, lang)).unwrap_or_default()
}
