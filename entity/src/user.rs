//! The `users` table, reduced to what authentication reads.
//!
//! new-api's real table has many more columns (password, email, quota, `group`, …); the
//! model names only these, so selecting through it works whatever else is present.
//! `deleted_at` (soft delete) is a timestamp whose type differs per backend; it is only ever
//! tested for NULL, so it is declared as a column but never decoded from a row
//! (see [`deleted_at`]).

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Alias, Expr, SimpleExpr};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub username: Option<String>,
    pub role: Option<i64>,
    pub status: Option<i64>,
    pub access_token: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The `users.deleted_at` column as an expression, for `IS NULL` tests.
pub fn deleted_at() -> SimpleExpr {
    Expr::col((Entity, Alias::new("deleted_at")))
}
