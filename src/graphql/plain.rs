//! Objects whose fields are resolved in one pass, in selection order, without a future per field.
//!
//! async-graphql resolves an object by boxing one future per selected field, driving them
//! through a `FuturesUnordered` and merging each answer into the object with two hashed
//! lookups. A page's nodes are up to a hundred objects of fields that read the row in memory
//! and finish on their first poll, so that machinery costs more than the fields themselves.
//! [`Plain`] wraps such an object and [`PlainList`] a list of them: the same types in the
//! schema, the same fields resolved by the same resolvers (the object's own `resolve_field`),
//! one after the other in selection order, each answer merged into the object as async-graphql
//! merges it ([`merge`]), a failing field's error added to the response as async-graphql adds
//! it. A list reads its selection and hashes its response keys once for all its objects.
//! Fragments (inline or spread) are followed the way async-graphql follows them. A selection
//! that still carries a directive (`@skip`/`@include` are applied before execution, so only a
//! custom one could) goes async-graphql's own way. The schema registers no extension
//! ([`super::build_schema`]): an extension's per-field hook would not run here.

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};

use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::Entry;
use async_graphql::indexmap::map::raw_entry_v1::{RawEntryApiV1, RawEntryMut};
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{ContainerType, resolve_container, resolve_list};
use async_graphql::{ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value};

/// An object resolved field by field in one pass (see the module's docs); in the schema it is `T`.
pub struct Plain<T>(pub T);

/// A list of objects resolved field by field in one pass, its selection read and its response
/// keys hashed once for every item; in the schema it is `[T!]!`. `T` is an object type (not an
/// interface), so every item has the same type and the selection read on the first holds for
/// all.
pub struct PlainList<T>(pub Vec<T>);

impl<T: ContainerType> OutputType for Plain<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match Selected::of(ctx, &self.0) {
            Some(selected) => Ok(selected.resolve(ctx, &self.0).await),
            None => resolve_container(ctx, &self.0).await,
        }
    }
}

impl<T: ContainerType> OutputType for PlainList<T> {
    fn type_name() -> Cow<'static, str> {
        Vec::<T>::type_name()
    }

    fn qualified_type_name() -> String {
        Vec::<T>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Vec::<T>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let selected = match self.0.first() {
            Some(first) => Selected::of(ctx, first),
            None => return Ok(Value::List(Vec::new())),
        };
        let Some(selected) = selected else {
            return resolve_list(ctx, field, &self.0, Some(self.0.len())).await;
        };
        let mut items = Vec::with_capacity(self.0.len());
        for (index, item) in self.0.iter().enumerate() {
            items.push(selected.resolve(&ctx.with_index(index), item).await);
        }
        Ok(Value::List(items))
    }
}

/// The fields a selection set selects on one type, each with its response key and the key's
/// hash under `keys` (the hasher every object of the list is built with).
struct Selected<'a> {
    fields: Vec<(&'a Positioned<Field>, Name, u64)>,
    keys: RandomState,
}

impl<'a> Selected<'a> {
    /// The fields `ctx` selects on `root` (and so on every object of its type); `None` when
    /// async-graphql's own way must answer ([`collect`]).
    fn of<T: ContainerType>(ctx: &ContextSelectionSet<'a>, root: &T) -> Option<Self> {
        let mut fields = Vec::with_capacity(ctx.item.node.items.len());
        if !collect(ctx, root, &ctx.item.node, &mut fields) {
            return None;
        }
        let keys = RandomState::new();
        let fields = fields
            .into_iter()
            .map(|field| {
                let key = field.node.response_key().node.clone();
                let hash = key_hash(&keys, &key);
                (field, key, hash)
            })
            .collect();
        Some(Selected { fields, keys })
    }

    /// `root`'s object: each field's resolver awaited in turn, its answer merged in as
    /// async-graphql merges it, its error added to the response.
    async fn resolve<T: ContainerType>(&self, ctx: &ContextSelectionSet<'_>, root: &T) -> Value {
        let mut object = IndexMap::with_capacity_and_hasher(self.fields.len(), self.keys.clone());
        for (field, key, hash) in &self.fields {
            let value = if field.node.name.node == "__typename" {
                Value::String(root.introspection_type_name().into_owned())
            } else {
                match root.resolve_field(&ctx.with_field(field)).await {
                    Ok(value) => value.unwrap_or_default(),
                    Err(error) => {
                        ctx.add_error(error);
                        continue;
                    }
                }
            };
            put(&mut object, *hash, key, value);
        }
        if object.is_empty() {
            Value::Null
        } else {
            Value::Object(object)
        }
    }
}

/// Lists the fields `set` selects on `root`, following fragments whose type condition applies
/// (none, `root`'s type, or an interface it implements); false when a selection carries a
/// directive or names an unknown fragment (async-graphql's own way then answers it).
fn collect<'a, T: ContainerType>(
    ctx: &ContextSelectionSet<'a>,
    root: &T,
    set: &'a SelectionSet,
    fields: &mut Vec<&'a Positioned<Field>>,
) -> bool {
    for selection in &set.items {
        let (condition, inner) = match &selection.node {
            Selection::Field(field) => {
                if !field.node.directives.is_empty() {
                    return false;
                }
                fields.push(field);
                continue;
            }
            Selection::FragmentSpread(spread) => {
                if !spread.node.directives.is_empty() {
                    return false;
                }
                let Some(fragment) = ctx.query_env.fragments.get(&spread.node.fragment_name.node)
                else {
                    return false;
                };
                (
                    Some(&fragment.node.type_condition),
                    &fragment.node.selection_set,
                )
            }
            Selection::InlineFragment(fragment) => {
                if !fragment.node.directives.is_empty() {
                    return false;
                }
                (
                    fragment.node.type_condition.as_ref(),
                    &fragment.node.selection_set,
                )
            }
        };
        let applies = condition.is_none_or(|condition| {
            let on = condition.node.on.node.as_str();
            let own = root.introspection_type_name();
            own == on
                || T::type_name() == on
                || ctx
                    .schema_env
                    .registry
                    .implements
                    .get(&*own)
                    .is_some_and(|interfaces| interfaces.contains(on))
        });
        if applies && !collect(ctx, root, &inner.node, fields) {
            return false;
        }
    }
    true
}

/// A response key's hash as an object's map built with `keys` computes it.
fn key_hash(keys: &RandomState, key: &Name) -> u64 {
    keys.hash_one(key)
}

/// Puts `value` under `key` (whose [`key_hash`] is `hash`) as [`merge`] does, without hashing
/// the key again.
fn put(object: &mut IndexMap<Name, Value>, hash: u64, key: &Name, value: Value) {
    match object.raw_entry_mut_v1().from_hash(hash, |k| k == key) {
        RawEntryMut::Vacant(entry) => {
            entry.insert_hashed_nocheck(hash, key.clone(), value);
        }
        RawEntryMut::Occupied(entry) => merge_into(entry.into_mut(), value),
    }
}

/// Puts `value` under `name` as async-graphql merges a field's answer into its object: the
/// first answer for a key stays, except that objects (and lists of objects, item by item)
/// selected twice under one key are merged.
fn merge(target: &mut IndexMap<Name, Value>, name: Name, value: Value) {
    match target.entry(name) {
        Entry::Vacant(entry) => {
            entry.insert(value);
        }
        Entry::Occupied(entry) => merge_into(entry.into_mut(), value),
    }
}

/// Merges `value` into the answer already under its key (see [`merge`]).
fn merge_into(into: &mut Value, value: Value) {
    match (into, value) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into, key, value);
            }
        }
        (Value::List(into), Value::List(from)) => {
            for (into, from) in into.iter_mut().zip(from) {
                if let (Value::Object(_), Value::Object(_)) = (&*into, &from) {
                    merge_into(into, from);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys put by their precomputed hash are found by the map's own lookups, and a key put
    /// twice keeps its first answer and place, as `merge` does.
    #[test]
    fn keys_put_by_their_hash_are_found_by_the_map() {
        let keys = RandomState::new();
        let mut object = IndexMap::with_hasher(keys.clone());
        let mut by_merge = IndexMap::new();
        for (key, value) in [("id", 1), ("mjId", 2), ("id", 3), ("x_id", 4)] {
            let key = Name::new(key);
            put(&mut object, key_hash(&keys, &key), &key, Value::from(value));
            merge(&mut by_merge, key, Value::from(value));
        }
        assert_eq!(object, by_merge);
        assert_eq!(
            object.keys().map(Name::as_str).collect::<Vec<_>>(),
            ["id", "mjId", "x_id"]
        );
        for (key, value) in [("id", 1), ("mjId", 2), ("x_id", 4)] {
            assert_eq!(object.get(key), Some(&Value::from(value)), "{key}");
        }
        // Enough keys for the map's table to spread them: a wrong hash would hide most.
        for i in 0..500 {
            let key = Name::new(format!("k{i}"));
            put(&mut object, key_hash(&keys, &key), &key, Value::from(i));
        }
        for i in 0..500 {
            assert_eq!(object.get(&*format!("k{i}")), Some(&Value::from(i)), "k{i}");
        }
    }

    /// A key selected twice merges as async-graphql's `insert_value` does: objects key by key,
    /// lists of objects item by item, anything else keeps its first answer.
    #[test]
    fn repeated_keys_merge_objects_and_lists_of_objects() {
        let object = |pairs: &[(&str, i32)]| {
            Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (Name::new(*k), Value::from(*v)))
                    .collect(),
            )
        };
        let mut into = Value::List(vec![object(&[("a", 1)]), Value::from(5)]);
        merge_into(
            &mut into,
            Value::List(vec![object(&[("b", 2), ("a", 9)]), Value::from(6)]),
        );
        assert_eq!(
            into,
            Value::List(vec![object(&[("a", 1), ("b", 2)]), Value::from(5)])
        );
        let mut scalar = Value::from(1);
        merge_into(&mut scalar, Value::from(2));
        assert_eq!(scalar, Value::from(1));
    }
}
