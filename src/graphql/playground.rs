//! The GraphiQL playground, its assets embedded in the binary so it works offline.
//! Subscriptions run over GraphQL over Server-Sent Events with `fetch` (a few lines in the
//! page, no client library), so the header editor's auth headers apply to them as well.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/graphiql.min.js.gz"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("../../assets/graphiql/graphiql.min.css.gz"),
    ),
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/react.production.min.js.gz"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js.gz"),
    ),
];

/// The document a first visit opens with: the caller's newest tasks of both logs (what the run button runs first), and live progress (picked from the run button's menu).
pub const SAMPLE_QUERY: &str = "query MyTasks {
  viewer { id username role }
  midjourneyTasks(page: { offset: { page: 1, pageSize: 10 } }) {
    totalCount
    nodes { id mjId action status progress prompt imageUrl submittedAt }
  }
  # new-api's other log: Suno music and video tasks (times in seconds)
  tasks(page: { offset: { page: 1, pageSize: 10 } }) {
    totalCount
    nodes { id taskId platform action status progress input resultUrl submittedAt }
  }
}

# Chart-ready: tasks per status and local day, the last 30 days (empty days are zeros).
query DailyByStatus {
  midjourneyTaskStats {
    groups(by: [STATUS], bucket: DAY, timeZone: \"UTC\") {
      status bucketStart count successRate quotaSum durationP50Ms durationP95Ms
    }
  }
}

# A CSV of every matching task: open this server's address + url in a browser.
query ExportCsv {
  midjourneyTaskExport(filter: { status: { eq: \"SUCCESS\" } }, timeZone: \"UTC\") {
    url
    expiresAt
  }
}

# Live progress: pick LiveProgress with the run button's menu; every event stays listed.
subscription LiveProgress {
  midjourneyTaskEvents(initialSnapshot: true) {
    kind
    task { id mjId status progress imageUrl failReason }
  }
}
";

/// The playground's address at `base` with `user_id`'s headers filled in and the sample document in the editor: one click on the run button shows their tasks (`MyTasks` is the operation it runs; `LiveProgress` is a pick from its menu away).
pub fn link(base: &str, user_id: i64, token: &str) -> String {
    let headers = serde_json::to_string_pretty(&serde_json::json!({
        "Authorization": format!("Bearer {token}"),
        "New-Api-User": user_id.to_string(),
    }))
    .unwrap_or_default();
    let query = serde_urlencoded::to_string([
        ("query", SAMPLE_QUERY),
        ("operationName", "MyTasks"),
        ("headers", &headers),
    ])
    .unwrap_or_default();
    format!("{base}/graphql?{query}")
}

/// The playground page. The header editor starts with the two auth headers to fill in; `?query=…&headers=…` in the address pre-fill the editors.
pub async fn page() -> Html<&'static str> {
    Html(PAGE_HTML.as_str())
}

/// [`PAGE`] with the sample document (after a first line saying what to fill in) as the editor's default.
static PAGE_HTML: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let default = format!(
        "# Fill in your access token and user id in the Headers tab below, then run.\n{SAMPLE_QUERY}"
    );
    PAGE.replace(
        "__DEFAULT_QUERY__",
        &serde_json::to_string(&default).unwrap_or_default(),
    )
});

/// `GET /graphql/assets/{name}`: an embedded, gzipped asset.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CONTENT_ENCODING, "gzip"),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mj-tasks GraphQL playground</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/graphql/assets/graphiql.min.css">
<style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
<div id="graphiql">Loading the playground…</div>
<script src="/graphql/assets/react.production.min.js"></script>
<script src="/graphql/assets/react-dom.production.min.js"></script>
<script src="/graphql/assets/graphiql.min.js"></script>
<script>
  const params = new URLSearchParams(window.location.search);
  const defaultHeaders = JSON.stringify(
    { "Authorization": "Bearer <access token>", "New-Api-User": "<user id>" }, null, 2);
  const defaultQuery = __DEFAULT_QUERY__;
  const http = GraphiQL.createFetcher({ url: "/graphql" });
  // The operation GraphiQL is about to run, from the parsed document it passes along.
  function isSubscription(params, opts) {
    const ops = ((opts && opts.documentAST && opts.documentAST.definitions) || [])
      .filter((d) => d.kind === "OperationDefinition");
    const op = ops.find((d) => d.name && d.name.value === params.operationName) || ops[0];
    return !!op && op.operation === "subscription";
  }
  // GraphQL over Server-Sent Events: one `next` event per result, then `complete`. The
  // result pane shows every event so far (the newest last, at most 200), not only the latest.
  async function* overSse(params, headers) {
    const events = [];
    for await (const result of sseResults(params, headers)) {
      events.push(result);
      if (events.length > 200) events.shift();
      yield events.length === 1 ? result : { events: events.slice() };
    }
  }
  async function* sseResults(params, headers) {
    const abort = new AbortController();
    try {
      const res = await fetch("/graphql", {
        method: "POST",
        headers: { ...headers, "Content-Type": "application/json", "Accept": "text/event-stream" },
        body: JSON.stringify(params),
        signal: abort.signal,
      });
      if (!res.body || !(res.headers.get("content-type") || "").startsWith("text/event-stream")) {
        yield await res.json();
        return;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (event === "next") yield JSON.parse(data.join("\n"));
          if (event === "complete") return;
        }
      }
    } finally {
      abort.abort();
    }
  }
  function fetcher(params, opts) {
    return isSubscription(params, opts) ? overSse(params, (opts && opts.headers) || {}) : http(params, opts);
  }
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery,
      query: params.get("query") ?? undefined,
      operationName: params.get("operationName") ?? undefined,
      headers: params.get("headers") ?? undefined,
      defaultHeaders,
      defaultEditorToolsVisibility: "headers",
      shouldPersistHeaders: false,
    }),
  );
</script>
</body>
</html>
"#;
