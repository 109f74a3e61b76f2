//! The export routes' part of the OpenAPI document: each export takes its list route's
//! filters (not its paging) plus `format`, `tz` and `bom`, and answers a file.

use serde_json::{Value, json};

const PAGING: [&str; 4] = ["p", "page_size", "ps", "size"];

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// The 200 of an export: the file, or (as the list routes do) a refusal answered 200.
fn file_response(failure: &str) -> Value {
    json!({
        "description": "The file, streamed: every matching row from one snapshot, newest first (RFC 4180 CSV with a header row, or one JSON object per line). Times appear as stored and again as ISO 8601 in `tz` (`<name>_iso`). CSV cells starting with =, +, -, @, tab or carriage return begin with ' (spreadsheet-formula neutralising). Content-Disposition names the file; X-Export-Rows gives the row count. As the list routes do, some refusals answer 200 with success false.",
        "headers": {
            "Content-Disposition": { "schema": { "type": "string" } },
            "X-Export-Rows": { "schema": { "type": "integer" } },
        },
        "content": {
            "text/csv": { "schema": { "type": "string" } },
            "application/x-ndjson": { "schema": { "type": "string" } },
            "application/json": { "schema": { "$ref": format!("#/components/schemas/{failure}") } },
        },
    })
}

fn failure(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

/// The export operation of a list operation `list`, refusing in `failure`'s envelope.
pub fn export_operation(list: &Value, summary: &str, failure_schema: &str) -> Value {
    let mut op = list.clone();
    op["summary"] = summary.into();
    let mut parameters: Vec<Value> = op["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !PAGING.contains(&p["name"].as_str().unwrap_or("")))
        .collect();
    parameters.push(query(
        "format",
        "csv (default) or ndjson",
        json!({ "enum": ["csv", "ndjson", ""] }),
    ));
    parameters.push(query(
        "tz",
        "the IANA time zone of the ISO 8601 columns (default UTC); unknown: 400",
        json!({ "type": "string", "maxLength": 64 }),
    ));
    parameters.push(query(
        "bom",
        "true or 1: start a CSV with a UTF-8 byte order mark",
        json!({ "enum": ["true", "false", "1", "0", ""] }),
    ));
    op["parameters"] = Value::Array(parameters);
    op["responses"]["200"] = file_response(failure_schema);
    op["responses"]["400"] = failure(
        "A parameter is malformed, or the export would hold more rows than --export-max-rows (EXPORT_TOO_LARGE).",
        failure_schema,
    );
    op["responses"]["429"] = failure(
        "Over the rate limit, or too many exports running (per user or on the instance).",
        failure_schema,
    );
    op
}

/// A download-link operation (the link GraphQL's `…Export` fields hand out).
pub fn download_operation(summary: &str, failure_schema: &str) -> Value {
    let refused = |d: &str| failure(d, failure_schema);
    json!({
        "summary": summary,
        "parameters": [ {
            "name": "token", "in": "query", "required": true,
            "description": "the signed token of the link",
            "schema": { "type": "string", "maxLength": 4096 },
        } ],
        "responses": {
            "200": file_response(failure_schema),
            "400": refused("The export would hold more rows than --export-max-rows."),
            "401": refused("Credentials were sent with the link and are incomplete."),
            "403": refused("The link is not valid (altered, of another deployment), has expired, or was issued to another user than the credentials sent with it."),
            "414": { "description": "The address is longer than the server reads (no body)." },
            "429": refused("Over the rate limit, or too many exports running."),
            "431": refused("Request headers over 16 KiB."),
            "500": refused("An internal error (details only in the server's log)."),
            "503": refused("The database is unavailable, too many connections, or the server is shutting down."),
            "504": refused("The request took longer than the request timeout."),
        },
    })
}
