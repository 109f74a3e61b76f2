#!/usr/bin/env bash
# Refreshes the vendored GraphiQL playground assets from the npm registry. The service
# embeds the gzipped files (src/graphql/playground.rs), so the playground works offline.
set -euo pipefail
cd "$(dirname "$0")"
GRAPHIQL=3.8.3   # the last GraphiQL with a UMD build (4.x is ESM-only)
REACT=18.3.1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null)
for p in "graphiql-$GRAPHIQL" "react-$REACT" "react-dom-$REACT"; do
  mkdir -p "$tmp/$p" && tar xzf "$tmp/$p.tgz" -C "$tmp/$p"
done
gzip -9n < "$tmp/graphiql-$GRAPHIQL/package/graphiql.min.js" > graphiql.min.js.gz
gzip -9n < "$tmp/graphiql-$GRAPHIQL/package/graphiql.min.css" > graphiql.min.css.gz
gzip -9n < "$tmp/react-$REACT/package/umd/react.production.min.js" > react.production.min.js.gz
gzip -9n < "$tmp/react-dom-$REACT/package/umd/react-dom.production.min.js" > react-dom.production.min.js.gz
cp "$tmp/graphiql-$GRAPHIQL/package/LICENSE" LICENSE.graphiql
cp "$tmp/react-$REACT/package/LICENSE" LICENSE.react
sha256sum ./*.gz > SHA256SUMS
