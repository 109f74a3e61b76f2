//! The one error type: stable machine codes, messages safe to show, HTTP statuses.
//!
//! Database and driver text never reaches a client: a `DbErr` is logged where it is
//! converted and becomes [`Error::Unavailable`] or [`Error::Internal`].

use sea_orm::{DbErr, RuntimeErr};

/// The language of client-facing messages (the legacy routes answer in Chinese by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// `en…` in `Accept-Language` selects English; anything else Chinese.
    pub fn from_accept_language(value: Option<&str>) -> Lang {
        match value {
            Some(v) if v.trim_start().to_ascii_lowercase().starts_with("en") => Lang::En,
            _ => Lang::Zh,
        }
    }
}

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

#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// A failed authentication or role check, with the legacy message and status.
    #[error("{}", .0.message(Lang::En))]
    Auth(#[from] AuthError),
    /// The caller may not use this filter or field.
    #[error("{0}")]
    Forbidden(String),
    /// A filter, parameter or other input is malformed or over a limit.
    #[error("{0}")]
    BadFilter(String),
    #[error("page size is at most 100")]
    PageTooLarge,
    #[error(
        "offset pages reach at most 10000 rows deep; use cursor pagination (page: {{cursor: …}}) to go further"
    )]
    OffsetTooDeep,
    #[error("this cursor was made for a different order or filter")]
    CursorMismatch,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("database unavailable")]
    Unavailable,
    /// A subscription limit (per connection, per user, per instance) is reached.
    #[error("{0}")]
    TooManySubscriptions(String),
    /// A subscriber fell so far behind that events for it were dropped.
    #[error("this subscription fell too far behind and events were dropped: subscribe again")]
    SlowConsumer,
    /// The source of live changes was interrupted (Redis lost or back, the deployment's feed
    /// skipped batches, the subscribed users unreadable): changes may have been missed.
    #[error(
        "live updates were interrupted and changes may have been missed: subscribe again (with initialSnapshot for the current state)"
    )]
    FeedInterrupted,
    /// The instance is shutting down.
    #[error("the server is shutting down: connect again")]
    ShuttingDown,
    /// The instance has as many connections open as it accepts.
    #[error("too many connections: try again shortly")]
    TooManyConnections,
    /// The request's headers are larger than the limit.
    #[error("request headers larger than 16 KiB")]
    HeadersTooLarge,
    /// The client took too long to send the request body.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The caller sent more requests than the rate limit allows.
    #[error("too many requests: slow down and retry after the time in Retry-After")]
    RateLimited,
    /// The request took longer than the whole-request limit (in milliseconds).
    #[error("the request took longer than {0} ms")]
    Timeout(u64),
    /// An export limit (per user, per instance) is reached.
    #[error("{0}")]
    TooManyExports(String),
    /// An export would hold more rows than one export may.
    #[error(
        "this export holds {rows} rows; one export holds at most {max}: narrow the filter (a time range, a status) and export in parts"
    )]
    ExportTooLarge { rows: u64, max: u64 },
    /// A download link that was not issued by this deployment, or was altered.
    #[error("this download link is not valid: ask for a new one")]
    LinkInvalid,
    /// A download link past its expiry.
    #[error("this download link has expired: ask for a new one")]
    LinkExpired,
    #[error("internal error")]
    Internal,
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable machine code (GraphQL `extensions.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Auth(a) if a.is_forbidden() => "FORBIDDEN",
            Error::Auth(_) => "UNAUTHENTICATED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::BadFilter(_) => "BAD_FILTER",
            Error::PageTooLarge => "PAGE_TOO_LARGE",
            Error::OffsetTooDeep => "OFFSET_TOO_DEEP",
            Error::CursorMismatch => "CURSOR_MISMATCH",
            Error::NotFound => "NOT_FOUND",
            Error::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Error::Unavailable => "UNAVAILABLE",
            Error::TooManySubscriptions(_) => "TOO_MANY_SUBSCRIPTIONS",
            Error::SlowConsumer => "SLOW_CONSUMER",
            Error::FeedInterrupted => "FEED_INTERRUPTED",
            Error::ShuttingDown => "SHUTTING_DOWN",
            Error::TooManyConnections => "TOO_MANY_CONNECTIONS",
            Error::HeadersTooLarge => "HEADERS_TOO_LARGE",
            Error::BodyTimeout => "BODY_TIMEOUT",
            Error::Timeout(_) => "TIMEOUT",
            Error::RateLimited => "RATE_LIMITED",
            Error::TooManyExports(_) => "TOO_MANY_EXPORTS",
            Error::ExportTooLarge { .. } => "EXPORT_TOO_LARGE",
            Error::LinkInvalid => "LINK_INVALID",
            Error::LinkExpired => "LINK_EXPIRED",
            Error::Internal => "INTERNAL",
        }
    }

    /// The HTTP status the legacy routes answer with.
    pub fn status(&self) -> u16 {
        match self {
            Error::Auth(a) => a.status(),
            Error::Forbidden(_) => 403,
            Error::BadFilter(_)
            | Error::PageTooLarge
            | Error::OffsetTooDeep
            | Error::CursorMismatch
            | Error::ExportTooLarge { .. } => 400,
            Error::LinkInvalid | Error::LinkExpired => 403,
            Error::NotFound => 404,
            Error::MethodNotAllowed => 405,
            Error::TooManySubscriptions(_) | Error::RateLimited | Error::TooManyExports(_) => 429,
            Error::Unavailable
            | Error::SlowConsumer
            | Error::FeedInterrupted
            | Error::ShuttingDown
            | Error::TooManyConnections => 503,
            Error::HeadersTooLarge => 431,
            Error::BodyTimeout => 408,
            Error::Timeout(_) => 504,
            Error::Internal => 500,
        }
    }

    /// The client-facing message in `lang` (only authentication messages are translated).
    pub fn message(&self, lang: Lang) -> String {
        match self {
            Error::Auth(a) => a.message(lang).to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        if is_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            Error::Unavailable
        } else {
            tracing::error!(error = %err, "database error");
            Error::Internal
        }
    }
}

/// Whether `err` means the database cannot be reached or did not answer in time (as
/// opposed to a bug or a bad statement).
pub(crate) fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            sqlx_unavailable(e)
        }
        _ => false,
    }
}

/// Whether `err` says the connection itself broke (closed by the server, reset, a
/// PostgreSQL session terminated, a MySQL server gone), not the statement: worth one more
/// try on another connection.
pub(crate) fn is_broken_connection(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as E;
    let sqlx = match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx.as_ref() {
        E::Io(_) | E::Protocol(_) => true,
        E::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            code.starts_with("57P0") || matches!(code.as_str(), "2006" | "2013")
        }
        _ => false,
    }
}

/// Whether `err` is a statement cut off at the statement timeout: the query's own fault,
/// not the server's (a replica that answers so is still a good replica).
pub(crate) fn is_statement_timeout(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as E;
    let sqlx = match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx.as_ref() {
        E::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL 57014, MySQL/MariaDB 1969/3024 (sqlx gives MariaDB's 1969 as its
            // SQLSTATE, 70100), SQLite 9 (interrupted).
            matches!(code.as_str(), "57014" | "1969" | "3024" | "70100" | "9")
        }
        _ => false,
    }
}

/// Whether `err` is no pool connection in time: a busy pool, or a server that does not
/// accept connections (the health check tells which).
pub(crate) fn is_pool_timeout(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as E;
    match err {
        DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(e.as_ref(), E::PoolTimedOut)
        }
        _ => false,
    }
}

fn sqlx_unavailable(e: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => true,
        E::Protocol(_) => true,
        E::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL: 57014 statement timeout, 57P0x shutdown, 08xxx connection
            // failures, 53xxx out of resources. MySQL/MariaDB: 1969/3024 statement
            // timeout, 1040 too many connections, 2006/2013 server gone. SQLite: 5 busy,
            // 6 locked, 9 interrupted (the statement timeout).
            code == "57014"
                || code.starts_with("57P0")
                || code.starts_with("08")
                || code.starts_with("53")
                || matches!(
                    code.as_str(),
                    "1969" | "3024" | "70100" | "1040" | "2006" | "2013"
                )
                || matches!(code.as_str(), "5" | "6" | "9" | "261" | "517")
        }
        _ => false,
    }
}
