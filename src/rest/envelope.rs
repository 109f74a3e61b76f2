//! The legacy JSON envelopes: `{"success":true,"message":"","data":…}` and
//! `{"success":false,"message":"…"}`.

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

/// An error rendered as the legacy failure envelope, in the caller's language.
#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    pub lang: Lang,
}

impl ApiError {
    pub fn new(error: impl Into<Error>, lang: Lang) -> ApiError {
        ApiError {
            error: error.into(),
            lang,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(failure(&self.error, self.lang))).into_response()
    }
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
