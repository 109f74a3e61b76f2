//! Users: the token lookup authentication needs, and creating users from the command line.

use std::collections::HashMap;

use entity::user::{self, Column};
use rand::Rng;
use rand::distr::Alphanumeric;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter};
use subtle::ConstantTimeEq;

use crate::error::{AuthError, Error};
use crate::service::Service;
use crate::service::session::Session;
use crate::service::viewer::{Role, Viewer};

/// Length of generated access tokens (new-api stores them in `char(32)`).
pub const TOKEN_LEN: usize = 32;

/// What authentication reads about a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    /// As stored; may be a value new-api does not define.
    pub role: i64,
    pub status: i64,
}

impl UserRecord {
    /// The user's role, when the user info is sane: a role new-api defines and a name.
    pub fn role(&self) -> Option<Role> {
        Role::from_stored(self.role).filter(|_| !self.username.is_empty())
    }

    /// Whether the user is banned (new-api's status 2).
    pub fn banned(&self) -> bool {
        self.status == 2
    }

    /// The user as a viewer, when sane and not banned: what every request is scoped by.
    pub fn viewer(&self) -> Result<Viewer, AuthError> {
        let role = self.role().ok_or(AuthError::InvalidUserInfo)?;
        if self.banned() {
            return Err(AuthError::Banned);
        }
        Ok(Viewer {
            id: self.id,
            username: self.username.clone(),
            role,
        })
    }
}

/// A user created by `mj-tasks user create` (or at first start).
#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub access_token: String,
}

/// A fresh random access token of [`TOKEN_LEN`] letters and digits.
fn new_token() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(TOKEN_LEN)
        .map(char::from)
        .collect()
}

/// Most user ids [`Service::current_viewers`] looks up at once.
pub const MAX_USER_BATCH: usize = 1000;

fn user_record(m: user::Model) -> UserRecord {
    UserRecord {
        id: m.id,
        username: m.username.unwrap_or_default(),
        role: m.role.unwrap_or_default(),
        status: m.status.unwrap_or_default(),
    }
}

impl Service {
    /// The live (not soft-deleted) user holding exactly `token`, if any. An empty token
    /// matches nobody.
    ///
    /// The lookup uses the column's unique index, whose collation may be looser than the
    /// token (MySQL's `_ci` collations ignore case and trailing spaces); the stored token
    /// is then compared with the given one byte for byte, in constant time.
    pub async fn user_by_token(&self, token: &str) -> Result<Option<UserRecord>, Error> {
        if token.is_empty() {
            return Ok(None);
        }
        if let Some(known) = self.tokens.get(token) {
            return Ok(known);
        }
        // PostgreSQL: compare as char(32), the column's type, so its unique index is used
        // (a text parameter would cast the column and scan the whole table). char
        // comparison ignores the padding PostgreSQL stores.
        let token_matches = if self.db.get_database_backend() == DbBackend::Postgres {
            Expr::col(Column::AccessToken).eq(Expr::val(token).cast_as(Alias::new("bpchar")))
        } else {
            Column::AccessToken.eq(token)
        };
        let lookup = user::Entity::find()
            .filter(token_matches)
            .filter(user::deleted_at().is_null());
        let found = self
            .read_current("user", |db| Box::pin(lookup.clone().one(db)))
            .await?;
        let padded = self.db.get_database_backend() == DbBackend::Postgres;
        let found = found.filter(|m| {
            let stored = m.access_token.as_deref().unwrap_or("");
            // PostgreSQL returns a char(32) value space-padded.
            let stored = if padded {
                stored.trim_end_matches(' ')
            } else {
                stored
            };
            bool::from(stored.as_bytes().ct_eq(token.as_bytes()))
        });
        let found = found.map(user_record);
        self.tokens.put(token, found.clone());
        Ok(found)
    }

    /// The usernames of the live (not soft-deleted) users among `ids`, for showing who owns
    /// a page's rows (new-api's task list): one query for the distinct positive ids; a user
    /// missing, deleted or with an empty name is absent.
    pub async fn usernames(&self, ids: &[i64]) -> Result<HashMap<i64, String>, Error> {
        let mut distinct: Vec<i64> = ids.iter().copied().filter(|id| *id > 0).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.is_empty() {
            return Ok(HashMap::new());
        }
        let lookup = user::Entity::find()
            .filter(Column::Id.is_in(distinct))
            .filter(user::deleted_at().is_null());
        let found = self
            .read("usernames", |db| Box::pin(lookup.clone().all(db)))
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|m| Some((m.id, m.username.filter(|n| !n.is_empty())?)))
            .collect())
    }

    /// The current viewer of each user in `ids` (at most [`MAX_USER_BATCH`] ids), or why
    /// their requests would now be refused: gone or soft-deleted (their token no longer
    /// authenticates), banned, no longer sane. One query.
    pub async fn current_viewers(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, Result<Viewer, AuthError>>, Error> {
        let mut out: HashMap<i64, Result<Viewer, AuthError>> = ids
            .iter()
            .map(|id| (*id, Err(AuthError::InvalidToken)))
            .collect();
        if ids.is_empty() {
            return Ok(out);
        }
        let lookup = user::Entity::find()
            .filter(Column::Id.is_in(ids.iter().copied().take(MAX_USER_BATCH)))
            .filter(user::deleted_at().is_null());
        let found = self
            .read_current("users", |db| Box::pin(lookup.clone().all(db)))
            .await?;
        for m in found {
            let record = user_record(m);
            out.insert(record.id, record.viewer());
        }
        Ok(out)
    }

    /// Gives the live user `username` a new random access token (the old one stops working
    /// at once on this instance, within `--auth-cache-ms` on others).
    pub async fn reissue_token(&self, username: &str) -> Result<NewUser, Error> {
        let session = Session::open(&self.db, self.pooler.as_ref()).await?;
        let result = self.reissue_token_on(&session, username).await;
        session.close(result.is_ok()).await?;
        result
    }

    async fn reissue_token_on(&self, db: &Session<'_>, username: &str) -> Result<NewUser, Error> {
        let found = user::Entity::find()
            .filter(Column::Username.eq(username.trim()))
            .filter(user::deleted_at().is_null())
            .one(db)
            .await?
            .ok_or_else(|| Error::BadFilter(format!("no user named {:?}", username.trim())))?;
        let token = new_token();
        let update = Query::update()
            .table(user::Entity)
            .value(Alias::new("access_token"), token.as_str())
            .and_where(Expr::col(Column::Id).eq(found.id))
            .to_owned();
        db.execute(&update).await?;
        let record = user_record(found);
        Ok(NewUser {
            id: record.id,
            role: Role::from_stored(record.role).unwrap_or(Role::Guest),
            username: record.username,
            access_token: token,
        })
    }

    /// How many users exist (soft-deleted ones included).
    pub async fn count_users(&self) -> Result<u64, Error> {
        let session = Session::open(&self.db, self.pooler.as_ref()).await?;
        let result = user::Entity::find().count(&session).await;
        session.close(result.is_ok()).await?;
        Ok(result?)
    }

    /// Creates an enabled user with a fresh random 32-character access token.
    pub async fn create_user(&self, username: &str, role: Role) -> Result<NewUser, Error> {
        let username = username.trim();
        if username.is_empty() || username.chars().count() > 64 {
            return Err(Error::BadFilter("a username is 1 to 64 characters".into()));
        }
        let session = Session::open(&self.db, self.pooler.as_ref()).await?;
        let result = create_user_on(&session, username, role).await;
        session.close(result.is_ok()).await?;
        result
    }
}

/// [`Service::create_user`] on one session.
async fn create_user_on(db: &Session<'_>, username: &str, role: Role) -> Result<NewUser, Error> {
    let exists = user::Entity::find()
        .filter(Column::Username.eq(username))
        .count(db)
        .await?;
    if exists > 0 {
        return Err(Error::BadFilter(format!(
            "user {username:?} already exists"
        )));
    }
    let token = new_token();
    // new-api declares `password` NOT NULL (the migrations add the column where it is
    // missing): an empty one, which no password login accepts, as for a token-only user.
    let insert = Query::insert()
        .into_table(user::Entity)
        .columns([
            Alias::new("username"),
            Alias::new("password"),
            Alias::new("role"),
            Alias::new("status"),
            Alias::new("access_token"),
        ])
        .values([
            username.into(),
            "".into(),
            role.stored().into(),
            1i64.into(),
            token.as_str().into(),
        ])
        .map_err(|e| {
            tracing::error!(error = %e, "building the user insert");
            Error::Internal
        })?
        .to_owned();
    db.execute(&insert).await?;
    let id = user::Entity::find()
        .filter(Column::Username.eq(username))
        .one(db)
        .await?
        .map(|m| m.id)
        .ok_or(Error::Internal)?;
    Ok(NewUser {
        id,
        username: username.to_owned(),
        role,
        access_token: token,
    })
}
