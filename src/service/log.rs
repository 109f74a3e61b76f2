//! One core for every task log.
//!
//! new-api keeps two task logs: `midjourneys` and the generic `tasks` (Suno, video). Every
//! rule — viewer scoping, filters with their NULL and case semantics, orders, offset and
//! keyset pages, counts and their coalescing, lookups — is written once, in
//! [`listing`](crate::service::listing), over a [`Log`]: a description of one table (its
//! entity, its filter, its sort keys, how a row becomes a record). A third log is a new
//! entity and a new `impl Log`, not a new service.

use std::fmt::Debug;

use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{DbBackend, DbErr, EntityTrait, FromQueryResult, QueryResult, Select};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::service::Service;
use crate::service::filter::{self, NumFilter};
use crate::service::listing::Scope;
use crate::service::order::KeyOrder;
use crate::service::page::PageRequest;
use crate::service::stats::GroupBy;
use crate::service::viewer::Viewer;

/// The backends a [`PerBackend`]'s `build` makes a select for, in its order.
pub(crate) const BACKENDS: [DbBackend; 3] =
    [DbBackend::Postgres, DbBackend::MySql, DbBackend::Sqlite];

/// A log's selects, built once for each backend and copied on every request (building one
/// lists its columns anew: 25 K instructions of a REST page's 650 K, README's eighth
/// round): `build` runs once per backend, SQLite's also standing for any other backend.
pub(crate) struct PerBackend<E: EntityTrait> {
    selects: std::sync::LazyLock<[Select<E>; 3]>,
}

impl<E: EntityTrait> PerBackend<E> {
    pub(crate) const fn new(build: fn() -> [Select<E>; 3]) -> PerBackend<E> {
        PerBackend {
            selects: std::sync::LazyLock::new(build),
        }
    }

    /// A copy of `backend`'s select (SQLite's, the last, for any backend not in
    /// [`BACKENDS`]).
    pub(crate) fn get(&self, backend: DbBackend) -> Select<E> {
        let i = BACKENDS
            .iter()
            .position(|b| *b == backend)
            .unwrap_or(BACKENDS.len() - 1);
        self.selects[i].clone()
    }
}

/// One task log: a table and what the core needs to know about it.
pub trait Log: Sized + Send + Sync + 'static {
    /// The table's entity.
    type Entity: EntityTrait;
    /// Everything a caller can ask of its rows.
    type Filter: LogFilter<Record = Self::Record>;
    /// The columns its rows can be sorted by.
    type Field: SortField<Record = Self::Record>;
    /// A row as both doors see it (no NULLs, no secrets).
    type Record: Clone
        + Debug
        + PartialEq
        + Send
        + Sync
        + serde::Serialize
        + serde::de::DeserializeOwned
        + 'static;

    /// The table's name (logs, traces).
    const TABLE: &'static str;
    /// The columns its statistics may group by.
    const GROUPINGS: &'static [GroupBy];

    /// The primary key.
    fn id_column() -> <Self::Entity as EntityTrait>::Column;
    /// The owner's user id: the column scoping is decided on.
    fn user_column() -> <Self::Entity as EntityTrait>::Column;
    /// The select that reads whole rows on `backend` (every column the record needs).
    fn rows(backend: DbBackend) -> Select<Self::Entity>;
    /// A select of no column from the log's table, to add columns or an aggregate to: what
    /// `Entity::find().select_only()` gives, without building every column and dropping
    /// them again on each request (a log keeps one and copies it).
    fn bare() -> Select<Self::Entity>;
    /// [`Log::rows`], or with `lean` without the large columns a caller did not ask for
    /// (read as NULL).
    fn rows_with(backend: DbBackend, lean: bool) -> Select<Self::Entity> {
        let _ = lean;
        Self::rows(backend)
    }
    /// A row of [`Log::rows`] or [`Log::rows_with`] as its model: by default by column name;
    /// a log whose selects list the model's columns in order may read them by position.
    fn decode(row: &QueryResult) -> Result<<Self::Entity as EntityTrait>::Model, DbErr> {
        <<Self::Entity as EntityTrait>::Model as FromQueryResult>::from_query_result(row, "")
    }
    /// A stored row as its record.
    fn record(model: <Self::Entity as EntityTrait>::Model, service: &Service) -> Self::Record;
    /// A record's row id.
    fn record_id(record: &Self::Record) -> i64;
    /// The filter that selects rows by id.
    fn id_filter(ids: NumFilter) -> Self::Filter;
    /// A record's owner (the user id scoping is decided on).
    fn owner(record: &Self::Record) -> i64;
    /// Whether a task is done (`progress = "100%"`): it changes no more.
    fn finished(record: &Self::Record) -> bool;
    /// The filter of unfinished tasks (the ones the live poller keeps watching).
    fn unfinished() -> Self::Filter;
    /// A record's upstream key (`mj_id`, `task_id`): what a subscription can list.
    fn key(record: &Self::Record) -> &str;
    /// The filter of rows whose key is one of `keys`.
    fn keys_filter(keys: &[String]) -> Self::Filter;
    /// The column the writer stamps on every change (epoch seconds), when the table has
    /// one: the live poller then also finds changed rows it was not watching.
    fn updated_at_column() -> Option<<Self::Entity as EntityTrait>::Column> {
        None
    }
    /// A record's change stamp (0 when unset, or when the table has none).
    fn updated_at(record: &Self::Record) -> i64 {
        let _ = record;
        0
    }
}

/// A log's filter: its own leaves (columns), and the `and`/`or`/`not` tree every filter
/// shares, whose limits and SQL are written once here.
pub trait LogFilter:
    Clone + Debug + Default + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The record the filter is evaluated on in memory.
    type Record;

    /// Checks this node's own leaves (limits, admin-only parts) for `viewer`.
    fn validate_leaves(&self, viewer: &Viewer) -> Result<(), Error>;
    /// This node's own leaves as one condition (all must hold).
    fn leaves_condition(&self, backend: DbBackend) -> Condition;
    /// The sub-filters: `and`, `or`, `not`.
    fn branches(&self) -> (&[Self], &[Self], Option<&Self>);
    /// Replaces the `and` list.
    fn set_and(&mut self, all: Vec<Self>);
    /// Whether this node's own leaves all hold for `record`, with exactly the meaning of
    /// [`LogFilter::leaves_condition`] (a generated test holds the two equal).
    fn leaves_match(&self, record: &Self::Record) -> bool;

    /// Whether this node's own leaves pin rows by their id or key (an `mj_id` lookup): such a
    /// filter usually matches fewer rows than a page.
    fn pins_rows(&self) -> bool {
        false
    }

    /// Whether `record` meets every part of this filter (validated first), in memory:
    /// what live subscriptions decide with.
    fn matches(&self, record: &Self::Record) -> bool {
        let (and, or, not) = self.branches();
        self.leaves_match(record)
            && and.iter().all(|f| f.matches(record))
            && (or.is_empty() || or.iter().any(|f| f.matches(record)))
            && not.is_none_or(|f| !f.matches(record))
    }

    /// Checks the limits and the admin-only parts for `viewer`; runs no SQL.
    fn validate(&self, viewer: &Viewer) -> Result<(), Error> {
        validate_at(self, viewer, 1)
    }

    /// The SQL condition for this filter (validated first) on `backend`. A filter with no
    /// parts matches every row (`1 = 1`, so it holds under `not` and inside `or` too).
    fn condition(&self, backend: DbBackend) -> Condition {
        crate::service::filter_sql::nonempty(self.parts(backend))
    }

    /// [`LogFilter::condition`] as a statement's own `WHERE` takes it: empty (no `1 = 1`)
    /// when the filter has no parts.
    fn parts(&self, backend: DbBackend) -> Condition {
        let mut all = self.leaves_condition(backend);
        let (and, or, not) = self.branches();
        for f in and {
            all = all.add(f.condition(backend));
        }
        if !or.is_empty() {
            let mut any = Condition::any();
            for f in or {
                any = any.add(f.condition(backend));
            }
            all = all.add(any);
        }
        if let Some(f) = not {
            all = all.add(f.condition(backend).not());
        }
        all
    }
}

fn validate_at<F: LogFilter>(f: &F, viewer: &Viewer, depth: usize) -> Result<(), Error> {
    if depth > filter::MAX_DEPTH {
        return Err(Error::BadFilter(format!(
            "filter nesting is deeper than {} levels",
            filter::MAX_DEPTH
        )));
    }
    f.validate_leaves(viewer)?;
    let (and, or, not) = f.branches();
    for (name, list) in [("and", and), ("or", or)] {
        if list.len() > filter::MAX_BRANCHES {
            return Err(Error::BadFilter(format!(
                "{name}: at most {} items",
                filter::MAX_BRANCHES
            )));
        }
        for f in list {
            validate_at(f, viewer, depth + 1)?;
        }
    }
    if let Some(f) = not {
        validate_at(f, viewer, depth + 1)?;
    }
    Ok(())
}

/// A column a log's rows can be sorted by; `ID` (unique) breaks every tie.
pub trait SortField:
    Copy + Debug + PartialEq + Eq + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The record the key's values are read from (cursors).
    type Record;
    /// The primary key.
    const ID: Self;
    /// The expression sorted on (NULL reads as the wire shows it).
    fn expr(self) -> Expr;
    /// This key's value in a record.
    fn value(self, record: &Self::Record) -> i64;
}

/// What to list from log `L`: a scope, a filter, an order and a page.
pub struct LogQuery<L: Log> {
    pub scope: Scope,
    pub filter: L::Filter,
    /// Empty means `ID DESC`.
    pub order: Vec<KeyOrder<L::Field>>,
    pub page: PageRequest,
}

impl<L: Log> Default for LogQuery<L> {
    fn default() -> Self {
        LogQuery {
            scope: Scope::default(),
            filter: L::Filter::default(),
            order: Vec::new(),
            page: PageRequest::default(),
        }
    }
}

impl<L: Log> Clone for LogQuery<L> {
    fn clone(&self) -> Self {
        LogQuery {
            scope: self.scope,
            filter: self.filter.clone(),
            order: self.order.clone(),
            page: self.page.clone(),
        }
    }
}

impl<L: Log> Debug for LogQuery<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogQuery")
            .field("log", &L::TABLE)
            .field("scope", &self.scope)
            .field("filter", &self.filter)
            .field("order", &self.order)
            .field("page", &self.page)
            .finish()
    }
}

/// A row of log `L` decoded by [`Log::decode`] (`select.into_model::<Decoded<L>>()`).
pub struct Decoded<L: Log>(pub <L::Entity as EntityTrait>::Model);

impl<L: Log> FromQueryResult for Decoded<L> {
    fn from_query_result(row: &QueryResult, _pre: &str) -> Result<Self, DbErr> {
        L::decode(row).map(Decoded)
    }
}
