//! The OpenAPI 3.1 description of the legacy routes and `/healthz`, served at
//! `/openapi.json` and committed as `openapi.json`. Item schemas are read off the item types
//! themselves (a record serialized through them), so a field added to an item is a field in
//! the document; parameters, envelopes and statuses follow the REST contract.

use serde_json::{Map, Value, json};

use crate::rest::items::{AdminItem, SelfItem};
use crate::rest::openapi_export::{download_operation, export_operation};
use crate::rest::task_items::TaskItem;
use crate::service::{PlatformTaskRecord, TaskRecord};

/// The schema of an item type: each field of `T`'s JSON, with its JSON type.
fn item_schema<T: From<TaskRecord> + serde::Serialize>(description: &str) -> Value {
    let sample = serde_json::to_value(T::from(TaskRecord::default())).unwrap_or_default();
    let fields = sample.as_object().cloned().unwrap_or_default();
    let mut properties = Map::new();
    for (name, value) in &fields {
        let kind = if value.is_string() {
            "string"
        } else {
            "integer"
        };
        properties.insert(name.clone(), json!({ "type": kind }));
    }
    let mut required: Vec<&String> = fields.keys().collect();
    required.sort();
    json!({
        "type": "object",
        "description": description,
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The schema of the task routes' item: each key of a sample item, `result_url` and
/// `username` optional (omitted when empty), `username` only on the admin route.
fn task_item_schema(admin: bool, description: &str) -> Value {
    let sample = PlatformTaskRecord {
        result_url: "x".into(),
        data: Some("{}".into()),
        ..Default::default()
    };
    let item = serde_json::to_value(TaskItem::new(sample, admin, Some("x"))).unwrap_or_default();
    let fields = item.as_object().cloned().unwrap_or_default();
    let mut properties = Map::new();
    for (name, value) in &fields {
        let schema = match (name.as_str(), value) {
            ("data", _) => {
                json!({ "description": "the upstream's answer as stored (compacted JSON), null when none" })
            }
            ("properties", _) => json!({
                "type": "object",
                "properties": {
                    "input": { "type": "string" },
                    "upstream_model_name": { "type": "string" },
                    "origin_model_name": { "type": "string" },
                },
                "required": ["input"],
                "additionalProperties": false,
            }),
            (_, Value::String(_)) => json!({ "type": "string" }),
            _ => json!({ "type": "integer" }),
        };
        properties.insert(name.clone(), schema);
    }
    let mut required: Vec<&String> = fields
        .keys()
        .filter(|k| *k != "result_url" && *k != "username")
        .collect();
    required.sort();
    json!({
        "type": "object",
        "description": description,
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The task routes' page: new-api's sorted envelope, the page struct's own order.
fn task_page_schema(item: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "data": {
                "type": "object",
                "properties": {
                    "page": { "type": "integer", "minimum": 1, "description": "the page used" },
                    "page_size": { "type": "integer", "minimum": 1, "maximum": 100, "description": "the page size used" },
                    "total": { "type": "integer", "minimum": 0, "description": "rows matching the same filters (and, on /self, the same user)" },
                    "items": { "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } },
                },
                "required": ["page", "page_size", "total", "items"],
                "additionalProperties": false,
            },
            "message": { "const": "" },
            "success": { "const": true },
        },
        "required": ["data", "message", "success"],
        "additionalProperties": false,
    })
}

/// A task route: new-api's parameters, its paging and lenient timestamps.
fn task_list_operation(summary: &str, page: &str, admin: bool) -> Value {
    let lenient = json!({ "type": "string", "maxLength": 32 });
    let exact = |what: &str| {
        query(
            what,
            "exact match, byte for byte (case and spaces count); empty: no filter",
            json!({ "type": "string", "maxLength": 191 }),
        )
    };
    let mut parameters = vec![
        query(
            "p",
            "page, from 1; not an integer or < 1: page 1",
            lenient.clone(),
        ),
        query(
            "page_size",
            "rows per page (default 10, at most 100); not an integer, 0 or negative: ps, size, then 10",
            lenient.clone(),
        ),
        query(
            "ps",
            "alias of page_size, read when page_size gives 0",
            lenient.clone(),
        ),
        query("size", "alias of page_size, read after ps", lenient.clone()),
        exact("platform"),
        exact("task_id"),
        exact("status"),
        exact("action"),
        query(
            "start_timestamp",
            "submit_time >= value, epoch seconds; not an integer or 0: no bound",
            lenient.clone(),
        ),
        query(
            "end_timestamp",
            "submit_time <= value, epoch seconds; not an integer or 0: no bound",
            lenient,
        ),
    ];
    if admin {
        parameters.push(query(
            "channel_id",
            "exact match on channel_id; not an integer: 400",
            json!({ "type": "string", "maxLength": 32 }),
        ));
    }
    let mut op = list_operation(summary, page, admin);
    op["parameters"] = Value::Array(parameters);
    op["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"][1] =
        json!({ "$ref": "#/components/schemas/TaskFailure" });
    for status in ["400", "401", "429", "431", "500", "503", "504"] {
        if let Some(r) = op["responses"].get_mut(status) {
            r["content"]["application/json"]["schema"] =
                json!({ "$ref": "#/components/schemas/TaskFailure" });
        }
    }
    op
}

fn page_schema(item: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "success": { "const": true },
            "message": { "const": "" },
            "data": {
                "type": "object",
                "properties": {
                    "items": { "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } },
                    "total": { "type": "integer", "minimum": 0, "description": "rows matching the same filters (and, on /self, the same user)" },
                    "page": { "type": "integer", "minimum": 1, "description": "the page used" },
                    "page_size": { "type": "integer", "minimum": 1, "maximum": 100, "description": "the page size used" },
                },
                "required": ["items", "total", "page", "page_size"],
                "additionalProperties": false,
            },
        },
        "required": ["success", "message", "data"],
        "additionalProperties": false,
    })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// An integer when given; empty means no filter.
fn strict_integer() -> Value {
    json!({ "type": "string", "pattern": "^(-?[0-9]{1,18})?$" })
}

fn list_operation(summary: &str, page: &str, admin: bool) -> Value {
    let lenient = json!({ "type": "string", "maxLength": 32 });
    let mut parameters = vec![
        query(
            "p",
            "page, from 1; missing, empty, not an integer or < 1: page 1",
            lenient.clone(),
        ),
        query(
            "page_size",
            "rows per page (default 20, at most 100); 0, negative or not a number: the default",
            lenient.clone(),
        ),
        query(
            "ps",
            "alias of page_size, read when page_size is missing, empty or 0",
            lenient.clone(),
        ),
        query("size", "alias of page_size, read after ps", lenient),
        query(
            "mj_id",
            "exact match, byte for byte (case and spaces count)",
            json!({ "type": "string", "maxLength": 256 }),
        ),
        query(
            "start_timestamp",
            "submit_time >= value, as stored (new-api stores milliseconds); not an integer: 400",
            strict_integer(),
        ),
        query(
            "end_timestamp",
            "submit_time <= value, as stored; not an integer: 400",
            strict_integer(),
        ),
    ];
    if admin {
        parameters.push(query(
            "channel_id",
            "exact match on channel_id; not an integer: 400",
            strict_integer(),
        ));
    }
    parameters.push(json!({
        "name": "Accept-Language", "in": "header", "required": false,
        "description": "en… answers authentication failures in English; otherwise Chinese",
        "schema": { "type": "string", "maxLength": 64 },
    }));
    let failure = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Failure" } } } });
    json!({
        "summary": summary,
        "security": [{ "accessToken": [], "userId": [] }],
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "The page, newest first. As the legacy gateway does, some refusals also answer 200 with success false: a token that matches no user, a banned user, a role too low.",
                "content": { "application/json": { "schema": { "oneOf": [
                    { "$ref": format!("#/components/schemas/{page}") },
                    { "$ref": "#/components/schemas/Failure" },
                ] } } },
            },
            "400": failure("A parameter is malformed (not an integer, the query string over 8 KiB, a NUL byte)."),
            "401": failure("No token, or a missing, malformed or mismatched New-Api-User."),
            "429": failure("Over the rate limit (Retry-After says when to retry)."),
            "431": failure("Request headers over 16 KiB."),
            "500": failure("An internal error (details only in the server's log)."),
            "503": failure("The database is unavailable, too many connections, or the server is shutting down."),
            "504": failure("The request took longer than the request timeout."),
        },
    })
}

/// The document.
pub fn document() -> Value {
    let mj_self = list_operation(
        "The caller's own tasks (any enabled user).",
        "SelfPage",
        false,
    );
    let mj_all = list_operation("Every task (admins).", "AdminPage", true);
    let task_self = task_list_operation(
        "The caller's own tasks of the generic log: Suno and video (any enabled user).",
        "TaskSelfPage",
        false,
    );
    let task_all = task_list_operation(
        "Every task of the generic log (admins), with the owners' usernames.",
        "TaskAdminPage",
        true,
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "mj-tasks: the legacy new-api routes",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "new-api's task logs as its GET /api/mj/self and GET /api/mj/ (Midjourney) and GET /api/task/self and GET /api/task/ (Suno and video) answer them. Authenticate with Authorization (the access token, optionally after Bearer) and New-Api-User (the token owner's id). GraphQL is at /graphql (schema.graphql).",
        },
        "paths": {
            "/api/mj/self/export": { "get": export_operation(&mj_self, "Export the caller's own tasks (the same filters as /api/mj/self).", "Failure") },
            "/api/mj/export": { "get": export_operation(&mj_all, "Export every task (admins; the same filters as /api/mj/).", "Failure") },
            "/api/mj/export/download": { "get": download_operation("Download an export through a signed link (GraphQL midjourneyTaskExport); no headers needed.", "Failure") },
            "/api/task/self/export": { "get": export_operation(&task_self, "Export the caller's own tasks of the generic log (the same filters as /api/task/self).", "TaskFailure") },
            "/api/task/export": { "get": export_operation(&task_all, "Export every task of the generic log (admins; the same filters as /api/task/).", "TaskFailure") },
            "/api/task/export/download": { "get": download_operation("Download an export of the generic log through a signed link (GraphQL taskExport); no headers needed.", "TaskFailure") },
            "/api/mj/self": { "get": mj_self },
            "/api/mj/": { "get": mj_all },
            "/api/task/self": { "get": task_self },
            "/api/task/": { "get": task_all },
            "/healthz": { "get": {
                "summary": "Liveness and a database ping, for load balancers.",
                "responses": {
                    "200": { "description": "Reads can be served.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } } },
                    "503": { "description": "No database answers, or the instance is draining.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } } },
                },
            } },
        },
        "components": {
            "securitySchemes": {
                "accessToken": { "type": "apiKey", "in": "header", "name": "Authorization", "description": "the user's access token, optionally as `Bearer <token>`" },
                "userId": { "type": "apiKey", "in": "header", "name": "New-Api-User", "description": "the token owner's user id" },
            },
            "schemas": {
                "SelfItem": item_schema::<SelfItem>("A task as its owner sees it: the 15 documented fields."),
                "AdminItem": item_schema::<AdminItem>("A task as an admin sees it: every public column."),
                "SelfPage": page_schema("SelfItem"),
                "TaskSelfItem": task_item_schema(false, "A task of the generic log as its owner sees it (channel_id always 0)."),
                "TaskAdminItem": task_item_schema(true, "A task of the generic log as an admin sees it (with the owner's username when known)."),
                "TaskSelfPage": task_page_schema("TaskSelfItem"),
                "TaskAdminPage": task_page_schema("TaskAdminItem"),
                "TaskFailure": {
                    "type": "object",
                    "properties": { "message": { "type": "string" }, "success": { "const": false } },
                    "required": ["message", "success"],
                    "additionalProperties": false,
                },
                "AdminPage": page_schema("AdminItem"),
                "Failure": {
                    "type": "object",
                    "properties": { "success": { "const": false }, "message": { "type": "string" } },
                    "required": ["success", "message"],
                    "additionalProperties": false,
                },
                "Health": {
                    "type": "object",
                    "properties": {
                        "status": { "enum": ["ok", "degraded", "draining"] },
                        "database": { "enum": ["ok", "unavailable"] },
                        "pool": { "type": "object", "properties": { "open": { "type": "integer" }, "in_use": { "type": "integer" }, "waiting": { "type": "integer" } } },
                        "replicas": { "type": "array" },
                        "primary_reads": { "type": "integer" },
                    },
                    "required": ["status"],
                },
            },
        },
    })
}

/// `value` with every object's keys in order, whatever serde_json's map keeps.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The document as committed in `openapi.json` (keys sorted, pretty-printed, a final
/// newline).
pub fn pretty() -> String {
    let mut text = serde_json::to_string_pretty(&sorted(document())).unwrap_or_default();
    text.push('\n');
    text
}
