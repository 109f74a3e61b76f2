//! mj-tasks: Midjourney task logs (the image and video jobs the new-api gateway submits
//! upstream) served through the legacy REST routes `GET /api/mj/self` and `GET /api/mj/`,
//! on SQLite, PostgreSQL or MySQL/MariaDB, including a live new-api database.
//!
//! - [`service`] holds all database access and every rule;
//! - [`rest`] translates the legacy routes to and from it;
//! - [`graphql`] is the GraphQL API over the same service;
//! - [`auth`] reads the caller from the two auth headers;
//! - [`cluster`] is what the instances of a deployment share (Redis, optional);
//! - [`server`] accepts connections, guards requests and shuts down gracefully;
//! - [`app`] wires it all together; [`config`] holds every setting.

pub mod app;
pub mod auth;
pub mod bench;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod db;
pub mod db_trouble;
pub mod db_url;
pub mod error;
pub mod graphql;
pub mod metrics;
pub mod rest;
pub mod server;
pub mod service;
pub mod state;
pub mod telemetry;
