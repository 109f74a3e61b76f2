//! A page's nodes resolve their fields in one pass (`graphql/plain.rs`); async-graphql's own
//! way must answer the same. Generated selection sets over every field of `MidjourneyTask` and
//! `Task` (read from the schema's SDL, so a new field is generated too), with aliases (some
//! shared by two selections of one field, which async-graphql merges), `__typename`, inline
//! fragments on the type, on `Node` and without a condition, and named fragments, are sent
//! for an admin and for a user (to whom `channelId` answers an error) through a page's `nodes`
//! and its `edges { node }` (a fragment on `Node` may hold one on the other log's type, which
//! must not apply), and again through `node(id:)` lookups of the same rows, which
//! async-graphql resolves its own way. Every row must answer the same text (keys in the same
//! order) and the same errors (message, path below the row, extensions).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

use crate::gql_filters::seeded;
use crate::helpers::{TestApp, TestUser, env_cases, runtime};
use crate::task_log::{Row, insert};

/// Rows per page in the generated requests (and so lookups per case).
const ROWS: usize = 6;

/// One selection of a generated set.
#[derive(Clone, Debug)]
enum Sel {
    /// A field of the type (an index into its fields), under no alias (0) or one of two.
    Field(usize, u8),
    /// `nodeId`, the one field of `Node`, under no alias (0) or one of two.
    NodeId(u8),
    /// `__typename`, under no alias (0) or one of two.
    Typename(u8),
    /// An inline fragment: on the type (`Some(false)`), on `Node` (`Some(true)`), or without a
    /// condition (`None`).
    Inline(Option<bool>, Vec<Sel>),
    /// `...Own` (the named fragment on the type) or `...AsNode` (on `Node`).
    Spread(bool),
    /// Inside a fragment on `Node`: a fragment on the other log's type selecting `id` under
    /// no alias (0) or one of two, which never applies.
    Other(u8),
}

/// A generated case: the selection set, the two named fragments' selections, who asks, which
/// log.
#[derive(Clone, Debug)]
struct Case {
    set: Vec<Sel>,
    own: Vec<Sel>,
    as_node: Vec<Sel>,
    admin: bool,
    task_log: bool,
}

fn alias(name: &str, a: u8) -> String {
    match a {
        0 => name.to_owned(),
        1 => format!("x_{name}: {name}"),
        _ => format!("y_{name}: {name}"),
    }
}

/// The text of `sels`, for a type whose fields are `fields`.
fn text(sels: &[Sel], ty: &str, fields: &[String], out: &mut String) {
    let other = if ty == "Task" {
        "MidjourneyTask"
    } else {
        "Task"
    };
    for s in sels {
        match s {
            Sel::Field(i, a) => out.push_str(&alias(&fields[i % fields.len()], *a)),
            Sel::NodeId(a) => out.push_str(&alias("nodeId", *a)),
            Sel::Typename(a) => out.push_str(&alias("__typename", *a)),
            Sel::Inline(on, inner) => {
                match on {
                    None => out.push_str("... {"),
                    Some(false) => out.push_str(&format!("... on {ty} {{")),
                    Some(true) => out.push_str("... on Node {"),
                }
                text(inner, ty, fields, out);
                out.push('}');
            }
            Sel::Spread(node) => out.push_str(if *node { "...AsNode" } else { "...Own" }),
            Sel::Other(a) => out.push_str(&format!("... on {other} {{ {} }}", alias("id", *a))),
        }
        out.push(' ');
    }
}

/// Whether `sels` (and the fragments they reach inline) spread `...AsNode` / `...Own`.
fn spreads(sels: &[Sel], node: bool) -> bool {
    sels.iter().any(|s| match s {
        Sel::Spread(n) => *n == node,
        Sel::Inline(_, inner) => spreads(inner, node),
        _ => false,
    })
}

fn case() -> impl Strategy<Value = Case> {
    let leaf = prop_oneof![
        6 => (0..64usize, 0..3u8).prop_map(|(f, a)| Sel::Field(f, a)),
        1 => (0..3u8).prop_map(Sel::NodeId),
        1 => (0..3u8).prop_map(Sel::Typename),
    ];
    let on_node = prop_oneof![
        (0..3u8).prop_map(Sel::NodeId),
        (0..3u8).prop_map(Sel::Typename),
        (0..3u8).prop_map(Sel::Other),
    ];
    let sel = prop_oneof![
        8 => leaf.clone(),
        1 => proptest::collection::vec(leaf.clone(), 1..4).prop_map(|v| Sel::Inline(Some(false), v)),
        1 => proptest::collection::vec(leaf.clone(), 1..4).prop_map(|v| Sel::Inline(None, v)),
        1 => proptest::collection::vec(on_node.clone(), 1..3).prop_map(|v| Sel::Inline(Some(true), v)),
        1 => any::<bool>().prop_map(Sel::Spread),
    ];
    (
        proptest::collection::vec(sel, 1..10),
        proptest::collection::vec(leaf, 1..5),
        proptest::collection::vec(on_node, 1..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(set, own, as_node, admin, task_log)| Case {
            set,
            own,
            as_node,
            admin,
            task_log,
        })
}

/// The fields of `type NAME implements Node` in the schema's SDL.
fn fields_of(sdl: &str, name: &str) -> Vec<String> {
    let head = format!("type {name} implements Node {{");
    sdl.lines()
        .skip_while(|l| l.trim() != head)
        .skip(1)
        .take_while(|l| l.trim() != "}")
        .filter_map(|l| {
            let field = l.strip_prefix('\t')?;
            let name: String = field
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            (!name.is_empty() && field[name.len()..].starts_with(':')).then_some(name)
        })
        .collect()
}

/// A request's errors as (row, path below the row, message, extensions), the row found after
/// the path's prefix `at` (`["page", "nodes"]`) or in the lookup's alias `n<row>`.
fn errors_below(answer: &Value, at: &[&str]) -> Result<Vec<String>, TestCaseError> {
    let mut out = Vec::new();
    for e in answer["errors"].as_array().into_iter().flatten() {
        let path = e["path"]
            .as_array()
            .ok_or_else(|| TestCaseError::fail(format!("an error without a path: {answer}")))?;
        let (row, rest) = if at.is_empty() {
            let alias = path.first().and_then(Value::as_str).unwrap_or("");
            (alias.strip_prefix('n').map(str::to_owned), &path[1..])
        } else if path.len() > at.len() && path.iter().zip(at).all(|(p, a)| p == a) {
            (Some(path[at.len()].to_string()), &path[at.len() + 1..])
        } else {
            continue;
        };
        let Some(row) = row else { continue };
        let rest = if at.last() == Some(&"edges") {
            rest.get(1..).unwrap_or_default()
        } else {
            rest
        };
        out.push(format!(
            "{row} {} {} {}",
            Value::from(rest.to_vec()),
            e["message"],
            e["extensions"]
        ));
    }
    out.sort();
    Ok(out)
}

#[test]
fn plain_nodes_answer_as_async_graphqls_own_way() {
    let rt = runtime();
    let (app, admin, user, node_ids) = rt.block_on(setup());
    let sdl = mj_tasks::graphql::sdl();
    let types = [
        (
            "MidjourneyTask",
            "midjourneyTasks",
            fields_of(&sdl, "MidjourneyTask"),
        ),
        ("Task", "tasks", fields_of(&sdl, "Task")),
    ];
    assert!(types.iter().all(|(_, _, f)| f.len() > 20), "{types:?}");
    let mut runner = TestRunner::new(Config {
        cases: env_cases("PLAIN_CASES", 48),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| {
        let (ty, root, fields) = &types[usize::from(case.task_log)];
        let viewer = if case.admin { &admin } else { &user };
        let ids = &node_ids[usize::from(case.task_log) * 2 + usize::from(case.admin)];
        let mut set = String::new();
        text(&case.set, ty, fields, &mut set);
        let mut frags = String::new();
        let mut used = case.set.clone();
        if spreads(&case.set, false) {
            frags.push_str(&format!("fragment Own on {ty} {{ "));
            text(&case.own, ty, fields, &mut frags);
            frags.push_str("} ");
            used.extend(case.own.iter().cloned());
        }
        if spreads(&used, true) {
            frags.push_str("fragment AsNode on Node { ");
            text(&case.as_node, ty, fields, &mut frags);
            frags.push_str("} ");
        }
        let page = format!(
            "{{ page: {root}(page: {{offset: {{pageSize: {ROWS}}}}}) {{ nodes {{ {set} }} edges {{ node {{ {set} }} }} }} }} {frags}"
        );
        let lookups: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| format!("n{i}: node(id: \"{id}\") {{ ... on {ty} {{ {set} }} }}"))
            .collect();
        let lookups = format!("{{ {} }} {frags}", lookups.join(" "));
        let (a, b) = rt.block_on(async {
            (
                app.gql(viewer, &page).await.json,
                app.gql(viewer, &lookups).await.json,
            )
        });
        let nodes = a["data"]["page"]["nodes"]
            .as_array()
            .ok_or_else(|| TestCaseError::fail(format!("no nodes: {a}\n{page}")))?;
        prop_assert_eq!(nodes.len(), ids.len(), "{}", a);
        for (i, node) in nodes.iter().enumerate() {
            let edge = &a["data"]["page"]["edges"][i]["node"];
            let lookup = &b["data"][format!("n{i}")];
            prop_assert_eq!(node.to_string(), edge.to_string(), "{}", page);
            prop_assert_eq!(node.to_string(), lookup.to_string(), "{}\n{}", page, lookups);
        }
        let via_lookups = errors_below(&b, &[])?;
        prop_assert_eq!(errors_below(&a, &["page", "nodes"])?, via_lookups.clone(), "{}", a);
        prop_assert_eq!(errors_below(&a, &["page", "edges"])?, via_lookups, "{}", a);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The seeded Midjourney tasks, task-log rows for the user and the admin, and each viewer's
/// node ids of a page (`[Midjourney user, Midjourney admin, task log user, task log admin]`).
async fn setup() -> (TestApp, TestUser, TestUser, Vec<Vec<String>>) {
    let (app, admin, user, _ids) = seeded().await;
    let mut rows = Vec::new();
    for (i, owner) in [user.id, admin.id, user.id, user.id]
        .into_iter()
        .enumerate()
    {
        let id = 100 + i as i64;
        rows.push(Row {
            task_id: Some("task_Q7sP2mXv"),
            platform: Some(if i % 2 == 0 { "suno" } else { "50" }),
            channel_id: Some(3),
            quota: Some(50_000),
            status: Some(if i == 2 { "FAILURE" } else { "SUCCESS" }),
            submit_time: Some(1_735_689_700 + i as i64),
            finish_time: Some(if i == 3 { 0 } else { 1_735_689_990 }),
            progress: Some("100%"),
            properties: Some(r#"{"origin_model_name":"kling-v1","input":"a <cat> & a dog"}"#),
            private_data: Some(r#"{"key":"secret","result_url":"https://cdn/v.mp4?a=1&b=2"}"#),
            data: (i != 1).then_some(r#"{ "code": 0, "note": "caf\u00e9" }"#),
            ..Row::of(id, owner)
        });
    }
    insert(&app, &rows).await;
    let mut ids = Vec::new();
    for root in ["midjourneyTasks", "tasks"] {
        for viewer in [&user, &admin] {
            let a = app
                .gql(
                    viewer,
                    &format!("{{ {root}(page: {{offset: {{pageSize: {ROWS}}}}}) {{ nodes {{ nodeId }} }} }}"),
                )
                .await;
            let page: Vec<String> = a.json["data"][root]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["nodeId"].as_str().map(str::to_owned))
                .collect();
            assert!(page.len() >= 2, "{}", a.text);
            ids.push(page);
        }
    }
    (app, admin, user, ids)
}
