// Documents for relay-compiler only (nothing runs this file): a refetchable fragment on the
// task type, the list that spreads it, and a batch read by global ids. check.cjs runs the
// artifacts the compiler makes from them.
/* global graphql */

graphql`
  fragment TaskCard_task on MidjourneyTask
  @refetchable(queryName: "TaskCardRefetchQuery") {
    mjId
    status
    progress
  }
`;

graphql`
  query TaskCardListQuery {
    midjourneyTasks(page: { offset: { pageSize: 5 } }) {
      nodes {
        nodeId
        ...TaskCard_task
      }
    }
  }
`;

graphql`
  query TaskCardNodesQuery($ids: [ID!]!) {
    nodes(ids: $ids) {
      nodeId
      ...TaskCard_task @alias
    }
  }
`;
