//! Column types as new-api's ORM (gorm) writes them on each backend.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The kinds of column the two tables use.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Go `int`: `integer` on SQLite, `bigint` elsewhere.
    Int,
    /// Go `string` without a size: `text`, `longtext` on MySQL.
    Text,
    /// A sized string: `varchar(n)`.
    Varchar(u32),
    /// An indexed string without a size: `text`, `varchar(191)` on MySQL (index prefix limit).
    IndexedText,
}

/// A nullable column of `kind` named `name`, typed for `backend`.
pub fn column(backend: DbBackend, name: &str, kind: Kind) -> ColumnDef {
    let mut def = ColumnDef::new(Alias::new(name));
    let ty = match (kind, backend) {
        (Kind::Int, DbBackend::Sqlite) => "integer".to_owned(),
        (Kind::Int, _) => "bigint".to_owned(),
        (Kind::Text, DbBackend::MySql) => "longtext".to_owned(),
        (Kind::Text, _) => "text".to_owned(),
        (Kind::Varchar(n), _) => format!("varchar({n})"),
        (Kind::IndexedText, DbBackend::MySql) => "varchar(191)".to_owned(),
        (Kind::IndexedText, _) => "text".to_owned(),
    };
    def.custom(Alias::new(ty)).null();
    def
}

/// The auto-increment primary key `id`.
pub fn primary_key(backend: DbBackend) -> ColumnDef {
    let mut def = ColumnDef::new(Alias::new("id"));
    match backend {
        DbBackend::Sqlite => def.integer(),
        _ => def.big_integer(),
    };
    def.not_null().auto_increment().primary_key();
    def
}

/// Every column of `midjourneys` but `id`, with its kind, in new-api's order.
pub const MIDJOURNEY_COLUMNS: &[(&str, Kind)] = &[
    ("code", Kind::Int),
    ("user_id", Kind::Int),
    ("action", Kind::Varchar(40)),
    ("mj_id", Kind::IndexedText),
    ("prompt", Kind::Text),
    ("prompt_en", Kind::Text),
    ("description", Kind::Text),
    ("state", Kind::Text),
    ("submit_time", Kind::Int),
    ("start_time", Kind::Int),
    ("finish_time", Kind::Int),
    ("image_url", Kind::Text),
    ("video_url", Kind::Text),
    ("video_urls", Kind::Text),
    ("status", Kind::Varchar(20)),
    ("progress", Kind::Varchar(30)),
    ("fail_reason", Kind::Text),
    ("channel_id", Kind::Int),
    ("quota", Kind::Int),
    ("buttons", Kind::Text),
    ("properties", Kind::Text),
];

/// The `users` columns the service reads or must write, but `id` and `deleted_at`.
pub const USER_COLUMNS: &[(&str, Kind)] = &[
    ("username", Kind::Varchar(64)),
    // new-api's NOT NULL password hash: written (empty) when a user is created here.
    ("password", Kind::Text),
    ("role", Kind::Int),
    ("status", Kind::Int),
];
