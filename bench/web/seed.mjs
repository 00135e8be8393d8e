// Seeding a box for the web benchmark through its own protocol: a page of
// the box (any page: it serves the vendored MessagePack codec) opens
// WebSockets to /ws and sends requests in a pipeline, many in flight at
// once, so that 10,000 messages take seconds and not minutes (the box
// must run with a lifted `limits.sends_per_second`).

/**
 * Runs in the page (page.evaluate): logs `username` in and runs `plan`, a
 * list of requests ({type, ...}); resolves with the token, the answers'
 * bodies in order, and the time taken. Requests go out as soon as an answer
 * frees a slot, with at most `window` in flight (the box's
 * max_inflight_requests is 64).
 */
export async function pipelineInPage({ username, password, plan, window: inFlight = 48 }) {
  if (!globalThis.MessagePack) {
    await new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = '/assets/vendor/msgpack.min.js';
      script.onload = resolve;
      script.onerror = () => reject(new Error('no /assets/vendor/msgpack.min.js'));
      document.head.append(script);
    });
  }
  const { encode, decode } = globalThis.MessagePack;
  const socket = new WebSocket(`wss://${location.host}/ws`);
  socket.binaryType = 'arraybuffer';
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error('the WebSocket did not open'));
  });
  const waiting = new Map();
  let nextId = 1;
  socket.onmessage = (event) => {
    const frame = decode(new Uint8Array(event.data));
    const pending = waiting.get(frame.id);
    if (!pending) return; // events
    waiting.delete(frame.id);
    if (frame.frame === 'ok') pending.resolve(frame.body);
    else pending.reject(new Error(`${frame.error.code}: ${frame.error.message}`));
  };
  const request = (req) => new Promise((resolve, reject) => {
    const id = nextId;
    nextId += 1;
    waiting.set(id, { resolve, reject });
    socket.send(encode({ id, req }));
  });
  await request({ type: 'hello', versions: [1], client: 'imbox-web-bench/1' });
  const authenticated = await request({ type: 'login', username, password, device_name: 'web bench' });
  const started = performance.now();
  const answers = new Array(plan.length);
  let next = 0;
  async function lane() {
    while (next < plan.length) {
      const at = next;
      next += 1;
      answers[at] = await request(plan[at]);
    }
  }
  await Promise.all(Array.from({ length: Math.min(inFlight, plan.length) }, lane));
  const ms = performance.now() - started;
  socket.close();
  return { token: authenticated.token, device: authenticated.device, user: authenticated.user, admin: authenticated.admin, answers, ms };
}
