// The GraphQL playground: GraphiQL, served from the gateway's own files.
// Queries and mutations go over HTTP, subscriptions over graphql-transport-ws
// on the same /graphql path. The headers editor's values (an Authorization
// header) are sent with HTTP requests and in connection_init.
(function () {
  'use strict';
  var url = location.origin + '/graphql';
  var wsUrl = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/graphql';
  var params = new URLSearchParams(location.search);

  var fetcher = GraphiQL.createFetcher({
    url: url,
    subscriptionUrl: wsUrl,
    wsConnectionParams: function () {
      // The headers tab, as the connection_init payload (authorization and all).
      try {
        var stored = localStorage.getItem('graphiql:headers');
        var h = stored ? JSON.parse(stored) : {};
        var out = {};
        Object.keys(h).forEach(function (k) { out[k.toLowerCase() === 'authorization' ? 'authorization' : k] = h[k]; });
        return out;
      } catch (e) { return {}; }
    },
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
