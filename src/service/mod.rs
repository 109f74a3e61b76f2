//! All database access and every rule: viewer scoping, filters, ordering, offset and keyset
//! pages, counts, users, imports. The REST and GraphQL skins only translate to and from
//! these types; neither builds a query.

mod cursor;
pub mod demo;
pub mod filter;
pub mod import;
pub mod order;
pub mod page;
mod record;
mod tasks;
mod users;
mod viewer;

pub use filter::{NumFilter, StringFilter, TaskFilter, TextFilter};
pub use order::{Direction, OrderField, TaskOrder};
pub use page::{CursorPage, OffsetPage, PageRequest, TaskPage};
pub use record::TaskRecord;
pub use tasks::{Scope, TaskQuery};
pub use users::{NewUser, UserRecord};
pub use viewer::{Role, Viewer};

use sea_orm::DatabaseConnection;

/// The service: a database handle plus the settings that shape what it returns.
/// Cheap to clone (the connection is a pool handle).
#[derive(Clone, Debug)]
pub struct Service {
    db: DatabaseConnection,
    image_forward_base: Option<String>,
}

impl Service {
    /// A service over `db`; `image_forward_base` turns on image-URL forwarding.
    pub fn new(db: DatabaseConnection, image_forward_base: Option<String>) -> Service {
        Service {
            db,
            image_forward_base: image_forward_base.filter(|b| !b.trim().is_empty()),
        }
    }

    /// The underlying connection (for start-up work such as migrations).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), crate::error::Error> {
        self.db.ping().await.map_err(crate::error::Error::from)
    }
}
