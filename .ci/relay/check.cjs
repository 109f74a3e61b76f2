// Relay against a running mj-tasks: the artifacts relay-compiler made from src/TaskCard.js
// (with `schemaConfig.nodeInterfaceIdField: "nodeId"`) run through relay-runtime, whose
// store keys records by the global id. Usage: node check.cjs <graphql url> <token> <user id>
"use strict";

const assert = require("node:assert/strict");
const { Environment, Network, RecordSource, Store, fetchQuery } = require("relay-runtime");
const ListQuery = require("./src/__generated__/TaskCardListQuery.graphql");
const RefetchQuery = require("./src/__generated__/TaskCardRefetchQuery.graphql");
const NodesQuery = require("./src/__generated__/TaskCardNodesQuery.graphql");

const [url, token, userId] = process.argv.slice(2);

async function main() {
  const network = Network.create(async (params, variables) => {
    const response = await fetch(url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${token}`,
        "New-Api-User": userId,
      },
      body: JSON.stringify({ query: params.text, variables }),
    });
    return response.json();
  });
  const source = new RecordSource();
  const environment = new Environment({
    network,
    store: new Store(source),
    getDataID: (record, typename) => record.nodeId ?? record.id,
  });

  // The refetch query the compiler generated asks `node` by the global id.
  const refetchText = RefetchQuery.params.text;
  assert.match(refetchText, /node\(id: \$nodeId\)/, refetchText);

  const list = await fetchQuery(environment, ListQuery, {}).toPromise();
  const nodes = list.midjourneyTasks.nodes;
  assert.ok(nodes.length > 0, "the demo user has tasks");
  const first = nodes[0].nodeId;
  const listed = source.get(first);
  assert.equal(listed.__typename, "MidjourneyTask");

  // Refetch the fragment through node(id:): the same record, by the same key.
  const refetched = await fetchQuery(environment, RefetchQuery, { nodeId: first }).toPromise();
  assert.ok(refetched.node, "node(id:) found the task");
  assert.equal(source.get(first).mjId, listed.mjId);

  // The batch read, in the order asked, with null for an id of no task.
  const missing = Buffer.from("MidjourneyTask:999999999").toString("base64");
  const ids = nodes.map((n) => n.nodeId).reverse().concat([missing]);
  const batch = await fetchQuery(environment, NodesQuery, { ids }).toPromise();
  assert.deepEqual(
    batch.nodes.map((n) => (n ? n.nodeId : null)),
    ids.slice(0, -1).concat([null]),
  );

  // Every task record in the store is keyed by its global id.
  const taskKeys = source.getRecordIDs().filter((k) => source.get(k).__typename === "MidjourneyTask");
  assert.deepEqual(taskKeys.sort(), nodes.map((n) => n.nodeId).sort());

  console.log(
    `relay: ${nodes.length} tasks listed and stored under their nodeId; ${first} refetched ` +
      `by the compiled node(id: $nodeId) query (mjId ${listed.mjId}); nodes(ids:) answered ` +
      `${ids.length} ids in order, the unknown one null`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
