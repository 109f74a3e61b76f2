//! State shared by every handler and resolver (cheap to clone).

use crate::graphql::AppSchema;
use crate::service::Service;

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub schema: AppSchema,
}
