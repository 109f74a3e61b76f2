//! Migrations that are safe on an existing new-api database.
//!
//! They only ever add: a missing table in new-api's shape for the backend, a missing column,
//! or one of the indexes the service's queries need. Nothing that exists is dropped,
//! renamed or retyped, and running them again changes nothing. The `mj-tasks migrate`
//! command and the server's start-up both run them (unless `--no-migrate` is given).

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_new_api_tables;
mod m20261128_000002_service_indexes;
mod shapes;

/// The ordered list of this service's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_new_api_tables::Migration),
            Box::new(m20261128_000002_service_indexes::Migration),
        ]
    }
}
