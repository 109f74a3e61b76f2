//! Black-box tests: the real server on a random port, each test on a fresh database.
//! SQLite by default; `TEST_DATABASE_URL=postgres://…` or `mysql://…` runs the same suite
//! on that server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod attach;
mod auth;
mod backends;
mod browser;
mod caches;
mod cli;
mod cross_backend;
mod db_restart;
mod db_servers;
mod deployment;
mod errors;
mod export;
mod filter_match;
mod filters;
mod found;
mod gate;
mod generated;
mod gql_federation;
mod gql_filters;
mod gql_http;
mod gql_limits_stats;
mod gql_pages;
mod gql_parity;
mod gql_persisted;
mod gql_relay;
mod gql_tasks;
mod groups_model;
mod helpers;
mod hostile;
mod items;
mod live;
mod live_client;
mod live_load;
mod load;
mod model;
mod network;
mod online_index;
mod operations;
mod paging;
mod pgbouncer;
mod process;
mod replica;
mod shutdown;
mod soak;
mod sqlite_writer;
mod startup;
mod task_log;
mod task_log_live;
mod task_log_model;
mod testdb;
mod traces;
mod transport_parity;
