//! Request limits checked before validation and execution: query depth (introspection
//! excluded, so the playground's schema query always passes), the number of fields a query
//! expands to, and no mutation over GET.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_graphql::ServerResult;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};

use crate::graphql::errors::server_error;

/// Deepest field nesting allowed in a query.
pub const MAX_DEPTH: usize = 10;
/// The fields that scan every matching row (a count, sums, a grouping): each runs its own aggregate query (the four stats totals share one, counted on `midjourneyTaskStats`).
pub const SCAN_FIELDS: &[&str] = &[
    "totalCount",
    "totalPages",
    "midjourneyTaskStats",
    "byStatus",
    "byAction",
    "byDay",
];
/// Most aggregate scans one request may ask for, aliases and fragments counted: a dashboard needs five, and hundreds of aliased counts are refused before any SQL runs (the complexity limit weighs a page's rows, which would multiply a count's weight).
pub const MAX_SCANS: usize = 10;
/// Most field selections a query may expand to once its fragments are inlined (the playground's introspection query needs a few hundred).
pub const MAX_FIELDS: usize = 2_000;

/// Marks a request that arrived over GET (mutations are refused).
pub struct OverGet;

/// Most parsed documents kept (the operations a frontend sends are few and repeated).
const MAX_PARSED: usize = 256;
/// Longest document kept parsed, in bytes.
const MAX_PARSED_LEN: usize = 16 * 1024;

/// Documents that parsed and passed [`check_shape`], by their text: a repeated operation is neither parsed nor measured again (validation still runs for every request).
#[derive(Default)]
pub(super) struct ParsedDocuments(Mutex<HashMap<String, ExecutableDocument>>);

impl ParsedDocuments {
    /// `query` parsed and measured (refused when too deep, too large or asking for too many
    /// scans), from the cache when it was seen before; `None` when it does not parse (the
    /// schema then refuses it with the parser's message).
    pub(super) fn parse(&self, query: &str) -> ServerResult<Option<ExecutableDocument>> {
        if let Some(doc) = self.get(query) {
            return Ok(Some(doc));
        }
        let Ok(doc) = async_graphql::parser::parse_query(query) else {
            return Ok(None);
        };
        check_shape(&doc)?;
        self.put(query, &doc);
        Ok(Some(doc))
    }

    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        let docs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        docs.get(query).cloned()
    }

    fn put(&self, query: &str, doc: &ExecutableDocument) {
        if query.len() > MAX_PARSED_LEN {
            return;
        }
        let mut docs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if docs.len() >= MAX_PARSED {
            docs.clear();
        }
        docs.insert(query.to_owned(), doc.clone());
    }
}

/// Every operation of `doc`.
pub(super) fn operations(doc: &ExecutableDocument) -> impl Iterator<Item = &OperationDefinition> {
    let ops: Vec<&OperationDefinition> = match &doc.operations {
        DocumentOperations::Single(op) => vec![&op.node],
        DocumentOperations::Multiple(ops) => ops.values().map(|op| &op.node).collect(),
    };
    ops.into_iter()
}

/// Refuses a document that, fragments expanded, is too deep, too large or asks for too many aggregate scans; linear in the document's size. Fields and scans are summed over all its operations: validation walks every one of them, not only the one that runs.
fn check_shape(doc: &ExecutableDocument) -> ServerResult<()> {
    let mut shape = Shape::new(doc);
    let mut total = Measure::default();
    for op in operations(doc) {
        total.add(shape.of(&op.selection_set.node));
    }
    let Measure {
        depth,
        fields,
        scans,
    } = total;
    if fields > MAX_FIELDS {
        return Err(server_error(
            format!(
                "Query selects too many fields once its fragments are expanded (at most {MAX_FIELDS})."
            ),
            "QUERY_TOO_COMPLEX",
        ));
    }
    if scans > MAX_SCANS {
        return Err(server_error(
            format!(
                "Query asks for too many counts and statistics (at most {MAX_SCANS} aggregate fields)."
            ),
            "QUERY_TOO_COMPLEX",
        ));
    }
    if depth > MAX_DEPTH {
        return Err(server_error(
            format!("Query is nested too deep (at most {MAX_DEPTH} levels)."),
            "QUERY_TOO_COMPLEX",
        ));
    }
    Ok(())
}

/// What a selection set amounts to once its fragments are expanded.
#[derive(Clone, Copy, Debug, Default)]
struct Measure {
    /// The deepest field nesting (introspection's `__schema` and `__type` not counted).
    depth: usize,
    /// Field selections (saturating).
    fields: usize,
    /// Selections of [`SCAN_FIELDS`] (saturating).
    scans: usize,
}

impl Measure {
    const HUGE: Measure = Measure {
        depth: usize::MAX,
        fields: usize::MAX,
        scans: usize::MAX,
    };

    fn add(&mut self, other: Measure) {
        self.depth = self.depth.max(other.depth);
        self.fields = self.fields.saturating_add(other.fields);
        self.scans = self.scans.saturating_add(other.scans);
    }
}

/// Measures selection sets, each fragment once: a document whose fragments spread each other many times (each spreading the next twice doubles the size per level) is measured in time linear in its text, before validation or execution would expand it.
struct Shape<'a> {
    doc: &'a ExecutableDocument,
    /// Fragment name → its measure, once known; `None` while being measured (a cycle, which validation refuses anyway, reads as too large).
    fragments: HashMap<&'a str, Option<Measure>>,
}

impl<'a> Shape<'a> {
    fn new(doc: &'a ExecutableDocument) -> Self {
        Shape {
            doc,
            fragments: HashMap::new(),
        }
    }

    fn of(&mut self, set: &'a SelectionSet) -> Measure {
        let mut total = Measure::default();
        for item in &set.items {
            let m = match &item.node {
                Selection::Field(f) => {
                    let name = f.node.name.node.as_str();
                    let inner = self.of(&f.node.selection_set.node);
                    Measure {
                        depth: if name == "__schema" || name == "__type" {
                            0
                        } else {
                            inner.depth.saturating_add(1)
                        },
                        fields: inner.fields.saturating_add(1),
                        scans: inner
                            .scans
                            .saturating_add(usize::from(SCAN_FIELDS.contains(&name))),
                    }
                }
                Selection::InlineFragment(frag) => self.of(&frag.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())
                }
            };
            total.add(m);
        }
        total
    }

    fn fragment(&mut self, name: &'a str) -> Measure {
        match self.fragments.get(name) {
            Some(Some(known)) => return *known,
            Some(None) => return Measure::HUGE,
            None => {}
        }
        let Some((key, frag)) = self.doc.fragments.get_key_value(name) else {
            return Measure::default();
        };
        self.fragments.insert(key.as_str(), None);
        let measured = self.of(&frag.node.selection_set.node);
        self.fragments.insert(key.as_str(), Some(measured));
        measured
    }
}
