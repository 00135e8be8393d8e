// What this page knows of the user's conversations: their descriptions (from
// `conversations`), the messages seen so far keyed by conversation and seq
// (so a message from history, from a sync page and from a push is one
// message), the other members' delivered/read markers, who is online and who
// is typing. Views listen for 'change' (detail: { id } or {}).

const HISTORY_PAGE = 50;
const TYPING_SHOWN_MS = 5000;

export class Chats extends EventTarget {
  constructor(connection, me) {
    super();
    this.connection = connection;
    this.me = me;
    this.conversations = new Map();
    this.online = new Set();
    this.typing = new Map(); // conversation id → Map(user → until)
    this.receiptsKey = `imbox.receipts.${me}`;
    this.receipts = this.loadReceipts();
    this.deliveredSent = new Map();
    this.reloadTimer = null;
  }

  loadReceipts() {
    try {
      return JSON.parse(localStorage.getItem(this.receiptsKey)) || {};
    } catch (e) {
      return {};
    }
  }

  changed(id) {
    this.dispatchEvent(new CustomEvent('change', { detail: id ? { id } : {} }));
  }

  conversation(id) {
    return this.conversations.get(Number(id)) || null;
  }

  /** A direct conversation with `user`, when there is one. */
  directWith(user) {
    for (const c of this.conversations.values()) if (c.kind === 'direct' && c.chat === user) return c;
    return null;
  }

  merge(info) {
    const id = Number(info.id);
    let c = this.conversations.get(id);
    if (!c) {
      c = { id, messages: new Map(), more: null, last: null };
      this.conversations.set(id, c);
    }
    c.kind = info.kind;
    c.chat = info.chat;
    c.members = info.members || [];
    c.admins = info.admins || [];
    c.last_seq = Math.max(c.last_seq || 0, Number(info.last_seq || 0));
    c.read_seq = Math.max(c.read_seq || 0, Number(info.read_seq || 0));
    // The other members' markers as the box holds them: a new browser knows
    // what was read before it came; later moves arrive as receipt entries.
    if (info.marks && info.marks.length) {
      const known = (this.receipts[id] ||= {});
      for (const m of info.marks) {
        const marks = (known[m.user] ||= { delivered: 0, read: 0 });
        marks.read = Math.max(marks.read, Number(m.read || 0));
        marks.delivered = Math.max(marks.delivered, Number(m.delivered || 0), marks.read);
      }
      localStorage.setItem(this.receiptsKey, JSON.stringify(this.receipts));
    }
    return c;
  }

  async loadConversations() {
    const answer = await this.connection.request({ type: 'conversations' });
    const ids = new Set();
    for (const info of answer.conversations || []) ids.add(this.merge(info).id);
    // Conversations the user left (or was removed from) are gone from the answer.
    for (const id of [...this.conversations.keys()]) if (!ids.has(id)) this.conversations.delete(id);
    this.changed();
    // The list shows each conversation's last message: one short history each.
    await Promise.all([...this.conversations.values()].filter((c) => c.last_seq > 0 && !c.last)
      .map((c) => this.loadHistory(c.id, null, 1).catch(() => {})));
  }

  /** Reloads the descriptions soon (a group changed, a new conversation appeared). */
  reloadSoon() {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.loadConversations().catch(() => {}), 200);
  }

  /** The page of messages before `before` (the newest when null). */
  async loadHistory(id, before, limit = HISTORY_PAGE) {
    const c = this.conversation(id);
    const req = { type: 'history', conversation: { id: Number(id) }, limit };
    if (before) req.before = before;
    const answer = await this.connection.request(req);
    for (const m of answer.messages || []) this.addMessage(m);
    if (c && (before || limit === HISTORY_PAGE)) {
      c.more = Boolean(answer.more);
      c.historyLoaded = true;
    }
    if (c && limit !== HISTORY_PAGE && !c.historyLoaded) c.more = null;
    this.changed(Number(id));
    return answer;
  }

  addMessage(m) {
    const id = Number(m.conversation);
    let c = this.conversation(id);
    if (!c) {
      c = this.merge({ id, kind: m.chat.startsWith('#') ? 'group' : 'direct', chat: m.chat, members: [], admins: [] });
      this.reloadSoon();
    }
    const seq = Number(m.seq);
    if (!c.messages.has(seq)) c.messages.set(seq, { ...m, seq, sent_at: Number(m.sent_at) });
    c.last_seq = Math.max(c.last_seq || 0, seq);
    if (!c.last || c.last.seq < seq) c.last = c.messages.get(seq);
    return c;
  }

  /** One item of the stream. Returns what the caller may want to notify about. */
  apply(item) {
    const id = Number(item.conversation);
    if (item.type === 'message') {
      const fresh = !(this.conversation(id) && this.conversation(id).messages.has(Number(item.seq)));
      const c = this.addMessage(item);
      if (item.from === this.me) {
        // Sent from here or another device of ours: what is before it was
        // read, and the box's read mark says so, or a reload would count
        // the user's own messages as unread.
        this.markRead(c);
      } else {
        this.stopTyping(id, item.from);
        this.markDelivered(c, Number(item.seq));
      }
      this.changed(id);
      return fresh && item.from !== this.me ? c : null;
    }
    if (item.type === 'receipt') {
      const c = this.conversation(id);
      if (item.user === this.me) {
        if (c && item.kind === 'read') c.read_seq = Math.max(c.read_seq, Number(item.seq));
      } else {
        const marks = ((this.receipts[id] ||= {})[item.user] ||= { delivered: 0, read: 0 });
        marks[item.kind] = Math.max(marks[item.kind] || 0, Number(item.seq));
        if (item.kind === 'read') marks.delivered = Math.max(marks.delivered, marks.read);
        localStorage.setItem(this.receiptsKey, JSON.stringify(this.receipts));
      }
      this.changed(id);
      return null;
    }
    if (item.type === 'membership') {
      if (item.user === this.me && (item.change === 'removed' || item.change === 'left')) {
        this.conversations.delete(id);
        this.changed();
      }
      this.reloadSoon();
    }
    return null;
  }

  /** Another member's markers in a conversation: { user: { delivered, read } }. */
  marks(id) {
    return this.receipts[id] || {};
  }

  unread(c) {
    return Math.max(0, (c.last_seq || 0) - (c.read_seq || 0));
  }

  totalUnread() {
    let n = 0;
    for (const c of this.conversations.values()) n += this.unread(c);
    return n;
  }

  markDelivered(c, seq) {
    if ((this.deliveredSent.get(c.id) || 0) >= seq) return;
    this.deliveredSent.set(c.id, seq);
    this.connection.request({ type: 'mark_delivered', conversation: { id: c.id }, seq }).catch(() => {
      this.deliveredSent.delete(c.id);
    });
  }

  markRead(c) {
    if (!c || c.read_seq >= c.last_seq) return;
    const seq = c.last_seq;
    const before = c.read_seq;
    c.read_seq = seq;
    this.changed(c.id);
    // Not sent (offline): the mark goes back, so the next look sends it again.
    this.connection.request({ type: 'mark_read', conversation: { id: c.id }, seq }).catch(() => {
      if (c.read_seq === seq) c.read_seq = before;
    });
  }

  resetPresence(users) {
    this.online = new Set(users);
    this.changed();
  }

  setPresence(user, online) {
    if (online) this.online.add(user);
    else this.online.delete(user);
    this.changed();
  }

  setTyping(id, user) {
    if (user === this.me) return;
    const users = this.typing.get(id) || new Map();
    this.typing.set(id, users);
    users.set(user, Date.now() + TYPING_SHOWN_MS);
    this.changed(id);
    setTimeout(() => this.changed(id), TYPING_SHOWN_MS + 50);
  }

  stopTyping(id, user) {
    const users = this.typing.get(id);
    if (users && users.delete(user)) this.changed(id);
  }

  typingIn(id) {
    const users = this.typing.get(id);
    if (!users) return [];
    const now = Date.now();
    return [...users].filter(([, until]) => until > now).map(([user]) => user);
  }

  /** Conversations, most recent activity first. */
  sorted() {
    const at = (c) => (c.last ? c.last.sent_at : 0) || c.last_seq || 0;
    return [...this.conversations.values()].sort((a, b) => at(b) - at(a) || b.id - a.id);
  }
}
