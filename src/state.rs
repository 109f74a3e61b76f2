//! State shared by every handler and resolver (cheap to clone).

use crate::service::Service;

#[derive(Clone, Debug)]
pub struct AppState {
    pub service: Service,
}
