//! SeaORM entities for the tables this service reads: `midjourneys` (one row per
//! Midjourney task, as the new-api gateway writes it), `tasks` (new-api's generic task log:
//! Suno and video tasks) and `users` (the columns authentication needs).
//!
//! new-api declares no NOT NULL constraint on any column but `id`, and rows written before
//! a column was added hold NULL there, so every other field is an `Option`. Business rules
//! (what NULL means on the wire, who may see what) live in the service crate, not here.

pub mod midjourney;
pub mod task;
pub mod user;

pub use midjourney::Entity as Midjourney;
pub use task::Entity as Task;
pub use user::Entity as User;
