//! The viewer: reads the two auth headers, looks the user up (through the service) and runs
//! the legacy checks in their documented order. Used by both the REST and GraphQL skins.

use axum::http::HeaderMap;

pub use crate::error::AuthError;
use crate::error::{Error, Lang};
use crate::service::{Role, Service, Viewer};

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

/// The credentials the request presents, as authentication reads them (the token without
/// its scheme, the user id as the number it parses to: `2`, `02`, `+2` and `Bearer 2` are
/// one user; `None` for any id that does not parse), for keying per-user limits; `None`
/// without a token.
pub fn presented(headers: &HeaderMap) -> Option<(&str, Option<i64>)> {
    let token = strip_bearer(header(headers, "authorization")?);
    let user = header(headers, "new-api-user")
        .map(strip_bearer)
        .and_then(|u| u.parse::<i64>().ok());
    (!token.is_empty()).then_some((token, user))
}

/// Whether the request carries an `Authorization` header at all (GraphQL lets
/// introspection through without one).
pub fn has_credentials(headers: &HeaderMap) -> bool {
    header(headers, "authorization").is_some_and(|v| !v.trim().is_empty())
}

/// Authenticates the request and checks the caller's role is at least `min_role`.
/// No check that fails runs a task query; the user lookup is one indexed query and is
/// remembered for at most `--auth-cache-ms` (default 1 s), so a ban or role change takes
/// effect within that time.
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
    let Some(role) = user.role() else {
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
    if user.banned() {
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
