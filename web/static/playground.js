// The GraphQL playground: GraphiQL, served from the gateway's own files.
// Queries and mutations go over HTTP, subscriptions over graphql-transport-ws
// on the same /graphql path. The headers editor's values (an Authorization
// header) are sent with HTTP requests and in connection_init.
(function () {
  'use strict';
  var url = location.origin + '/graphql';
  var wsUrl = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/graphql';
  var params = new URLSearchParams(location.search);

  // GraphiQL sends the headers tab as the connection_init payload as it
  // is typed; the gateway takes Authorization and X-API-Key there in any
  // case, as it does in HTTP headers.
  var fetcher = GraphiQL.createFetcher({
    url: url,
    subscriptionUrl: wsUrl,
  });

  ReactDOM.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: params.get('query') || '# Welcome to cqrsgate.\n# Try:  { events(first: 10) { events { position streamId type data } head } }\n' +
        '# or a subscription:  subscription { events { position type data } }\n\n{ eventTypes { name latestVersion } }\n',
      query: params.get('query') || undefined,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    }),
    document.getElementById('graphiql')
  );
})();
