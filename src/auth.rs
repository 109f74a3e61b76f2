//! The viewer: reads the two auth headers, looks the user up (through the service) and runs
//! the legacy checks in their documented order. Used by both the REST and GraphQL skins.

use axum::http::HeaderMap;

use crate::error::{Error, Lang};
use crate::service::{Role, Service, Viewer};

/// Why a request was refused, in the legacy gateway's order and words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no access token")]
    NoToken,
    #[error("invalid access token")]
    InvalidToken,
    #[error("invalid user info")]
    InvalidUserInfo,
    #[error("New-Api-User header missing")]
    NoUserHeader,
    #[error("New-Api-User header malformed")]
    BadUserHeader,
    #[error("New-Api-User does not match the token's user")]
    UserMismatch,
    #[error("user banned")]
    Banned,
    #[error("insufficient privilege")]
    InsufficientRole,
}

impl AuthError {
    /// The legacy HTTP status: some failures answer 200 with `success: false`.
    pub fn status(self) -> u16 {
        match self {
            AuthError::NoToken
            | AuthError::NoUserHeader
            | AuthError::BadUserHeader
            | AuthError::UserMismatch => 401,
            AuthError::InvalidToken
            | AuthError::InvalidUserInfo
            | AuthError::Banned
            | AuthError::InsufficientRole => 200,
        }
    }

    /// True for failures of a known user (banned, role too low), false for identity failures.
    pub fn is_forbidden(self) -> bool {
        matches!(self, AuthError::Banned | AuthError::InsufficientRole)
    }

    /// The legacy message.
    pub fn message(self, lang: Lang) -> &'static str {
        let (zh, en) = match self {
            AuthError::NoToken => (
                "无权进行此操作，未登录且未提供 access token",
                "Unauthorized, not logged in and no access token provided",
            ),
            AuthError::InvalidToken => (
                "无权进行此操作，access token 无效",
                "Unauthorized, invalid access token",
            ),
            AuthError::InvalidUserInfo => (
                "无权进行此操作，用户信息无效",
                "Unauthorized, invalid user info",
            ),
            AuthError::NoUserHeader => (
                "无权进行此操作，未提供 New-Api-User",
                "Unauthorized, New-Api-User header not provided",
            ),
            AuthError::BadUserHeader => (
                "无权进行此操作，New-Api-User 格式错误",
                "Unauthorized, New-Api-User header format error",
            ),
            AuthError::UserMismatch => (
                "无权进行此操作，New-Api-User 与登录用户不匹配",
                "Unauthorized, New-Api-User does not match logged in user",
            ),
            AuthError::Banned => ("用户已被封禁", "User has been banned"),
            AuthError::InsufficientRole => (
                "无权进行此操作，权限不足",
                "Unauthorized, insufficient privilege",
            ),
        };
        match lang {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// Longest header value considered; longer ones are treated as invalid.
const MAX_HEADER: usize = 256;

/// Strips an optional, case-insensitive `Bearer ` scheme and surrounding spaces. A bare
/// `Bearer` (HTTP trims the space after it) is a scheme without a token: empty.
fn strip_bearer(value: &str) -> &str {
    let v = value.trim();
    if v.eq_ignore_ascii_case("bearer") {
        return "";
    }
    match v.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => v[7..].trim(),
        _ => v,
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"))
}

/// The language of the caller's messages, from `Accept-Language` (REST and GraphQL alike).
pub fn lang(headers: &HeaderMap) -> Lang {
    Lang::from_accept_language(header(headers, "accept-language"))
}

/// Whether the request carries an `Authorization` header at all (GraphQL lets
/// introspection through without one).
pub fn has_credentials(headers: &HeaderMap) -> bool {
    header(headers, "authorization").is_some_and(|v| !v.trim().is_empty())
}

/// Authenticates the request and checks the caller's role is at least `min_role`.
/// No check that fails runs a task query; the user lookup is one indexed query and is
/// never cached, so a ban or role change takes effect on the next request.
pub async fn authenticate(
    service: &Service,
    headers: &HeaderMap,
    min_role: Role,
) -> Result<Viewer, Error> {
    // 1. Authorization present.
    let raw = header(headers, "authorization").unwrap_or("");
    if raw.trim().is_empty() {
        return Err(AuthError::NoToken.into());
    }
    let token = strip_bearer(raw);
    if token.is_empty() {
        return Err(AuthError::NoToken.into());
    }
    // 2. The token belongs to a live user with sane user info.
    if token.len() > MAX_HEADER || token.contains('\u{0}') {
        return Err(AuthError::InvalidToken.into());
    }
    let user = service
        .user_by_token(token)
        .await?
        .ok_or(AuthError::InvalidToken)?;
    let role = Role::from_stored(user.role);
    let Some(role) = role.filter(|_| !user.username.is_empty()) else {
        return Err(AuthError::InvalidUserInfo.into());
    };
    // 3–5. New-Api-User names that same user.
    let claimed = header(headers, "new-api-user")
        .map(strip_bearer)
        .unwrap_or("");
    if claimed.is_empty() {
        return Err(AuthError::NoUserHeader.into());
    }
    let claimed: i64 = claimed.parse().map_err(|_| AuthError::BadUserHeader)?;
    if claimed != user.id {
        return Err(AuthError::UserMismatch.into());
    }
    // 6. Not banned.
    if user.status == 2 {
        return Err(AuthError::Banned.into());
    }
    // 7. Role high enough.
    if role < min_role {
        return Err(AuthError::InsufficientRole.into());
    }
    Ok(Viewer {
        id: user.id,
        username: user.username,
        role,
    })
}
