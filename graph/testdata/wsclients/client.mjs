// Drives cqrsgate with a reference websocket client and prints what it saw.
// Usage: node client.mjs <graphql-transport-ws|graphql-ws> <url> <events>
// It runs a query (which must complete), then subscribes to the event log
// from the start, takes <events> events, unsubscribes and prints
// {"typename": ..., "completed": true, "positions": [...]} on stdout.
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { SubscriptionClient } from 'subscriptions-transport-ws';

const [protocol, url, count] = process.argv.slice(2);
const want = Number(count);
const out = { typename: null, completed: false, positions: [] };
const finish = (code, why) => {
  if (why) console.error(why);
  console.log(JSON.stringify(out));
  process.exit(code);
};
setTimeout(() => finish(2, 'timed out'), 20000);

const query = '{ __typename }';
const subscription = 'subscription { events(after: 0) { position type } }';

if (protocol === 'graphql-transport-ws') {
  const client = createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0 });
  client.subscribe({ query }, {
    next: (r) => { out.typename = r.data.__typename; },
    error: (e) => finish(1, 'query error: ' + JSON.stringify(e)),
    complete: () => {
      out.completed = true;
      const stop = client.subscribe({ query: subscription }, {
        next: (r) => {
          if (r.errors) finish(1, JSON.stringify(r.errors));
          out.positions.push(r.data.events.position);
          if (out.positions.length === want) {
            stop();
            client.dispose().then(() => finish(0));
          }
        },
        error: (e) => finish(1, 'subscription error: ' + JSON.stringify(e)),
        complete: () => {},
      });
    },
  });
} else if (protocol === 'graphql-ws') {
  const client = new SubscriptionClient(url, { reconnect: false }, WebSocket);
  client.request({ query }).subscribe({
    next: (r) => { out.typename = r.data.__typename; },
    error: (e) => finish(1, 'query error: ' + JSON.stringify(e)),
    complete: () => {
      out.completed = true;
      const sub = client.request({ query: subscription }).subscribe({
        next: (r) => {
          if (r.errors) finish(1, JSON.stringify(r.errors));
          out.positions.push(r.data.events.position);
          if (out.positions.length === want) {
            sub.unsubscribe();
            client.close();
            finish(0);
          }
        },
        error: (e) => finish(1, 'subscription error: ' + JSON.stringify(e)),
      });
    },
  });
} else {
  finish(64, 'unknown protocol ' + protocol);
}
