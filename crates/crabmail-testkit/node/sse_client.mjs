// A WHATWG EventSource (npm `eventsource`, the browser's API for Node) on crabmail's event
// stream: prints "open" at each (re)connection and one JSON line per event
// ({id, type, data}); reconnects by itself with Last-Event-ID, as a browser does.
// Usage: node sse_client.mjs URL TOKEN TYPE...
import { EventSource } from "eventsource";

const [url, token, ...types] = process.argv.slice(2);
const source = new EventSource(url, {
  fetch: (input, init) =>
    fetch(input, {
      ...init,
      headers: { ...init.headers, Authorization: `Bearer ${token}` },
    }),
});
source.onopen = () => console.log("open");
for (const type of types) {
  source.addEventListener(type, (e) =>
    console.log(JSON.stringify({ id: e.lastEventId, type: e.type, data: JSON.parse(e.data) })),
  );
}
