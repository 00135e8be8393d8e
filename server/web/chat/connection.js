// The WebSocket session with the box: MessagePack frames (the vendored
// @msgpack/msgpack, loaded as a classic script before the modules), request
// ids matched to answers, events, and reconnection with capped exponential
// back-off and jitter (at once when the browser comes back online).
//
// Events (dispatched on the Connection):
//   'ready'    the session is authenticated; detail = the `authenticated` body
//   'offline'  the socket is gone; detail = { retryAt } (null: not retrying)
//   'event'    a server event; detail = the event map
//   'stopped'  the session ended for good; detail = { reason: 'revoked' | 'bad_credentials' | 'logout' | … }

const { encode, decode } = globalThis.MessagePack;

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30000;
// The box pings a client it has not heard from for 5 minutes; a ping of our
// own after a minute of quiet finds a dead socket (a sleeping laptop, a lost
// network) long before that, and the pong deadline closes it.
const IDLE_PING_MS = 60000;
const PONG_DEADLINE_MS = 10000;

/** An error answer from the box (or 'offline' when there is no session). */
export class RequestError extends Error {
  constructor(code, message, retryAfterMs) {
    super(message || code);
    this.code = code;
    this.retryAfterMs = retryAfterMs || 0;
  }
}

export class Connection extends EventTarget {
  /**
   * `authenticate(request)` is called after `hello` on every new socket and
   * resolves with the `authenticated` body (it sends resume/login/register).
   */
  constructor(authenticate) {
    super();
    this.authenticate = authenticate;
    this.socket = null;
    this.ready = false;
    this.stopped = false;
    this.nextId = 1;
    this.pending = new Map();
    this.attempt = 0;
    this.retryTimer = null;
    this.retryAt = null;
    this.lastHeard = 0;
    this.idleTimer = null;
    this.welcome = null;
    window.addEventListener('online', () => this.retryNow());
    // The browser knows before the socket does: drop it and wait for 'online'.
    window.addEventListener('offline', () => this.drop());
  }

  start() {
    this.stopped = false;
    this.open();
  }

  /** Ends the session for good (logout, revoked): no reconnection. */
  stop(reason) {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.idleTimer);
    if (this.socket) this.socket.close(1000);
    this.dispatchEvent(new CustomEvent('stopped', { detail: { reason } }));
  }

  /** Gives up the socket at once, without waiting for its close handshake (which may never come). */
  drop() {
    const socket = this.socket;
    if (!socket) return;
    this.closed(socket, 1006);
    socket.close();
  }

  retryNow() {
    if (this.stopped || this.socket) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  open() {
    this.retryAt = null;
    const socket = new WebSocket(`${location.protocol === 'http:' ? 'ws' : 'wss'}://${location.host}/ws`);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    socket.addEventListener('open', () => this.greet(socket));
    socket.addEventListener('message', (m) => this.receive(socket, m.data));
    socket.addEventListener('close', (c) => this.closed(socket, c.code));
  }

  async greet(socket) {
    try {
      this.lastHeard = Date.now();
      this.welcome = await this.send(socket, { type: 'hello', versions: [1], client: 'imbox-web/1' });
      const authenticated = await this.authenticate((req) => this.send(socket, req));
      if (socket !== this.socket) return;
      this.attempt = 0;
      this.ready = true;
      this.idleTimer = setInterval(() => this.keepAlive(socket), IDLE_PING_MS / 4);
      this.dispatchEvent(new CustomEvent('ready', { detail: authenticated }));
    } catch (e) {
      if (socket !== this.socket) return;
      if (e.code === 'bad_credentials' || e.code === 'invalid_invite' || e.code === 'unsupported_version') {
        this.stop(e.code);
      } else {
        socket.close();
      }
    }
  }

  keepAlive(socket) {
    if (socket !== this.socket || Date.now() - this.lastHeard < IDLE_PING_MS) return;
    const timer = setTimeout(() => { if (socket === this.socket) this.drop(); }, PONG_DEADLINE_MS);
    this.send(socket, { type: 'ping' }).then(() => clearTimeout(timer), () => clearTimeout(timer));
  }

  closed(socket, code) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.ready = false;
    clearInterval(this.idleTimer);
    for (const { reject } of this.pending.values()) reject(new RequestError('offline'));
    this.pending.clear();
    if (this.stopped) return;
    // 1000: logged out; 1008: revoked or not authenticated; 1002: this
    // client broke the protocol. Retrying would not help any of them.
    if (code === 1000 || code === 1008 || code === 1002) {
      this.stop(code === 1008 ? 'revoked' : code === 1000 ? 'logout' : 'protocol');
      return;
    }
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = navigator.onLine === false ? null : Math.round(cap / 2 + Math.random() * cap / 2);
    this.attempt += 1;
    this.retryAt = delay === null ? null : Date.now() + delay;
    if (delay !== null) this.retryTimer = setTimeout(() => this.open(), delay);
    this.dispatchEvent(new CustomEvent('offline', { detail: { retryAt: this.retryAt } }));
  }

  receive(socket, data) {
    if (socket !== this.socket) return;
    this.lastHeard = Date.now();
    let frame;
    try {
      frame = decode(new Uint8Array(data));
    } catch (e) {
      socket.close();
      return;
    }
    if (frame.frame === 'event') {
      const event = frame.event || {};
      if (event.type === 'revoked') this.stop('revoked');
      else this.dispatchEvent(new CustomEvent('event', { detail: event }));
      return;
    }
    const waiting = this.pending.get(frame.id);
    if (!waiting) return;
    this.pending.delete(frame.id);
    if (frame.frame === 'ok') waiting.resolve(frame.body);
    else {
      const error = frame.error || {};
      waiting.reject(new RequestError(error.code || 'internal', error.message, Number(error.retry_after_ms || 0)));
    }
  }

  send(socket, req) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return Promise.reject(new RequestError('offline'));
    const id = this.nextId;
    this.nextId = this.nextId >= 0xfffffff0 ? 1 : this.nextId + 1;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Integers go out as plain numbers; positions stay far below 2^53.
      socket.send(encode({ id, req }));
    });
  }

  /** A request on the authenticated session; rejects with code 'offline' without one. */
  request(req) {
    if (!this.ready) return Promise.reject(new RequestError('offline'));
    return this.send(this.socket, req);
  }
}
