// Messages not yet stored by the box, kept in localStorage per user so that
// a reload or a closed tab loses nothing. Each has its client id
// (crypto.randomUUID()); it is sent again with the SAME id after every
// reconnect until `sent` arrives, and the box de-duplicates. An item leaves
// the outbox when its `sent` arrives or when the message itself comes back
// from the stream (another tab of the same user may have sent it).

import { RequestError } from './connection.js';

// Errors after which sending the same message again cannot succeed.
const FINAL = new Set(['invalid_argument', 'too_large', 'not_found', 'not_member', 'id_conflict', 'invalid_name']);

export class Outbox extends EventTarget {
  constructor(connection, user) {
    super();
    this.connection = connection;
    this.key = `imbox.outbox.${user}`;
    this.inFlight = new Set();
    this.items = this.load();
    this.retryTimer = null;
    connection.addEventListener('ready', () => this.flush());
    // Another tab changed the outbox: take its list, then send what is ours to send.
    window.addEventListener('storage', (e) => {
      if (e.key !== this.key) return;
      this.items = this.load();
      this.changed();
      this.flush();
    });
  }

  load() {
    try {
      const items = JSON.parse(localStorage.getItem(this.key));
      return Array.isArray(items) ? items : [];
    } catch (e) {
      return [];
    }
  }

  save() {
    localStorage.setItem(this.key, JSON.stringify(this.items));
    this.changed();
  }

  changed() {
    this.dispatchEvent(new CustomEvent('change'));
  }

  /** Items waiting for a conversation: by its id, or by the user name of a direct chat not yet made. */
  for(view) {
    return this.items.filter((item) => (view.id ? item.conversation === view.id : item.to.user === view.user && !item.conversation));
  }

  /** Queues a message; `view` = { id } for a conversation, or { user } for a new direct chat. */
  add(view, text, attachments) {
    const item = {
      id: crypto.randomUUID(),
      to: view.id ? { id: view.id } : { user: view.user },
      conversation: view.id || null,
      text,
      attachments: attachments && attachments.length ? attachments : undefined,
      created: Date.now(),
    };
    this.items.push(item);
    this.save();
    this.flush();
    return item;
  }

  discard(id) {
    this.items = this.items.filter((item) => item.id !== id);
    this.save();
  }

  /** The message with this client id was seen in the stream: it is stored. */
  settled(id) {
    if (this.items.some((item) => item.id === id)) this.discard(id);
  }

  flush() {
    if (!this.connection.ready) return;
    for (const item of this.items) {
      if (item.failed || this.inFlight.has(item.id)) continue;
      this.sendOne(item);
    }
  }

  async sendOne(item) {
    this.inFlight.add(item.id);
    try {
      const req = { type: 'send', to: item.to, id: item.id, text: item.text };
      if (item.attachments) req.attachments = item.attachments;
      const sent = await this.connection.request(req);
      this.inFlight.delete(item.id);
      this.items = this.load().filter((i) => i.id !== item.id);
      this.save();
      this.dispatchEvent(new CustomEvent('sent', { detail: { item, sent } }));
    } catch (e) {
      this.inFlight.delete(item.id);
      if (!(e instanceof RequestError) || e.code === 'offline') return; // sent again on 'ready'
      if (FINAL.has(e.code)) {
        const stored = this.items.find((i) => i.id === item.id);
        if (stored) {
          stored.failed = { code: e.code, message: e.message };
          this.save();
        }
        return;
      }
      // rate_limited, unavailable, storage_full, internal: later, same id.
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.flush(), Math.max(1000, e.retryAfterMs || 5000));
    }
  }
}
