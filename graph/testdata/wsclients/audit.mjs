// Runs the graphql-http server audit (the GraphQL-over-HTTP specification's
// conformance checks) against the URL given as the first argument and
// prints one JSON line per audit: {status: ok|warn|error, id, name, reason}.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
const results = await auditServer({ url });
for (const r of results) {
  const out = { status: r.status, id: r.id, name: r.name };
  if (r.status !== 'ok') {
    out.reason = r.reason;
    try {
      const res = r.response;
      out.response = { status: res.status, contentType: res.headers.get('content-type'), body: (await res.text()).slice(0, 300) };
    } catch (e) { /* no response to show */ }
  }
  console.log(JSON.stringify(out));
}
