//! The GraphiQL playground, its assets embedded in the binary so it works offline.

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

/// The playground page. The header editor starts with the two auth headers to fill in;
/// `?query=…&headers=…` in the address pre-fill the editors.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

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
  const defaultQuery = `# Fill in your access token and user id in the Headers tab below, then run.
query MyTasks {
  viewer { id username role }
  midjourneyTasks(page: { offset: { page: 1, pageSize: 10 } }) {
    totalCount
    nodes { id mjId action status progress prompt imageUrl submittedAt }
  }
}
`;
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: GraphiQL.createFetcher({ url: "/graphql" }),
      defaultQuery,
      query: params.get("query") ?? undefined,
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
