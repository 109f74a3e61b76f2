//! Rendering the service's errors as GraphQL errors with `extensions.code`.
//!
//! Resolvers convert with [`Gql::gql`]; never with a bare `?` on a foreign error type,
//! which would go through async-graphql's `Display` conversion with no code.

use async_graphql::{ErrorExtensions, ServerError};

use crate::error::{Error, Lang};

/// A GraphQL error for `e`, in `lang`, carrying its code.
pub fn to_gql(e: &Error, lang: Lang) -> async_graphql::Error {
    let code = e.code();
    async_graphql::Error::new(e.message(lang)).extend_with(|_, ext| ext.set("code", code))
}

/// Converts a service result into a resolver result.
pub trait Gql<T> {
    fn gql(self, lang: Lang) -> async_graphql::Result<T>;
}

impl<T> Gql<T> for Result<T, Error> {
    fn gql(self, lang: Lang) -> async_graphql::Result<T> {
        self.map_err(|e| to_gql(&e, lang))
    }
}

/// A request-level error (not from a resolver) with `code`.
pub fn server_error(message: impl Into<String>, code: &'static str) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code);
    err.extensions = Some(ext);
    err
}

/// Gives every error that has none a code: async-graphql's own limit, parse and validation errors, and input coercion errors. Anything else is unexpected: INTERNAL, with its text replaced (it goes to the log).
pub fn ensure_codes(errors: &mut [ServerError], request_failed: bool) {
    for err in errors {
        let has_code = err
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if err.message.starts_with("Query is too complex")
            || err.message.starts_with("Query is nested too deep")
        {
            "QUERY_TOO_COMPLEX"
        } else if request_failed {
            "GRAPHQL_VALIDATION_FAILED"
        } else if err.message.starts_with("Failed to parse")
            || err.message.starts_with("Invalid value")
        {
            "BAD_FILTER"
        } else {
            tracing::error!(error = %err.message, "unexpected GraphQL error");
            err.message = "internal error".into();
            "INTERNAL"
        };
        err.extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
}
