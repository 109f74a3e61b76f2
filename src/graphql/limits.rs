//! Request limits checked before execution: query depth (introspection excluded, so the
//! playground's schema query always passes) and no mutation over GET.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{ServerResult, Variables};

use crate::graphql::errors::server_error;

/// Deepest field nesting allowed in a query.
pub const MAX_DEPTH: usize = 10;

/// Marks a request that arrived over GET (mutations are refused).
pub struct OverGet;

/// The limits extension.
pub struct Limits;

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsExtension)
    }
}

struct LimitsExtension;

#[async_trait::async_trait]
impl Extension for LimitsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let operations: Vec<_> = match &doc.operations {
            DocumentOperations::Single(op) => vec![&op.node],
            DocumentOperations::Multiple(ops) => ops.values().map(|op| &op.node).collect(),
        };
        if ctx.data_opt::<OverGet>().is_some()
            && operations.iter().any(|op| op.ty == OperationType::Mutation)
        {
            return Err(server_error(
                "mutations are not executed over GET; use POST",
                "METHOD_NOT_ALLOWED",
            ));
        }
        for op in operations {
            if depth(&doc, &op.selection_set.node, 0) > MAX_DEPTH {
                return Err(server_error(
                    format!("Query is nested too deep (at most {MAX_DEPTH} levels)."),
                    "QUERY_TOO_COMPLEX",
                ));
            }
        }
        Ok(doc)
    }
}

/// The deepest field nesting under `set`, fragments followed, introspection fields
/// (`__schema`, `__type`) not counted. Stops counting past the limit, so fragment cycles
/// (invalid anyway) cannot recurse forever.
fn depth(doc: &ExecutableDocument, set: &SelectionSet, level: usize) -> usize {
    if level > MAX_DEPTH {
        return level;
    }
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                let name = f.node.name.node.as_str();
                if name == "__schema" || name == "__type" {
                    level
                } else {
                    depth(doc, &f.node.selection_set.node, level + 1)
                }
            }
            Selection::InlineFragment(frag) => depth(doc, &frag.node.selection_set.node, level),
            Selection::FragmentSpread(spread) => doc
                .fragments
                .get(&spread.node.fragment_name.node)
                .map_or(level, |frag| {
                    depth(doc, &frag.node.selection_set.node, level)
                }),
        })
        .max()
        .unwrap_or(level)
}
