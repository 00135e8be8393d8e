// One conversation: its history (older pages load when scrolled to the top,
// keeping the reader's place), a "jump to latest" button, the states of the
// user's own messages (pending, stored, delivered, read), typing and
// presence, and the composer. Messages are keyed by seq and unsent ones by
// their client id, so nothing shows twice.

import { errorText, h, nameList, t } from './dom.js';
import { when } from './list.js';

const TYPING_EVERY_MS = 3000;
const NEAR_TOP_PX = 80;
const NEAR_BOTTOM_PX = 120;

export class ConversationView {
  /** `view` is { id } for a conversation, or { user } for a direct chat not made yet. */
  constructor(app, view) {
    this.app = app;
    this.view = view;
    this.nodes = new Map();
    this.loadingOlder = false;
    this.lastTyping = 0;
    this.stickToBottom = true;

    this.title = h('h2#conversation-title');
    this.subtitle = h('p.subtitle#conversation-status');
    this.info = h('button#group-info', { type: 'button', hidden: true, text: { key: 'chat.group.info' }, onclick: () => app.show({ group: this.view.id }) });
    const back = h('button.back#back', { type: 'button', 'aria-label': t('chat.back'), text: { key: 'chat.back' }, onclick: () => app.show(null) });
    this.older = h('p.older#older', { role: 'status' });
    this.list = h('ol.messages#messages', { 'aria-labelledby': 'conversation-title' });
    this.scroller = h('div.scroller#scroller', { tabindex: '0', 'aria-label': t('chat.conversation.messages') }, this.older, this.list);
    this.jump = h('button.jump#jump-latest', { type: 'button', hidden: true, text: { key: 'chat.conversation.jump' }, onclick: () => this.toBottom() });
    this.typing = h('p.typing#typing', { 'aria-live': 'polite' });
    this.input = h('textarea#composer-text', { rows: '1', 'aria-label': t('chat.composer.label'), placeholder: t('chat.composer.placeholder') });
    this.error = h('p.error#composer-error', { role: 'alert' });
    this.attach = app.attachments ? app.attachments.createAttachControls({ token: app.device.token, t }) : null;
    this.form = h('form.composer#composer', { onsubmit: (e) => { e.preventDefault(); this.send(); } },
      this.attach ? this.attach.element : null,
      this.input,
      h('button.primary#send', { type: 'submit', text: { key: 'chat.composer.send' } }));
    this.element = h('section.conversation#conversation', { 'aria-labelledby': 'conversation-title' },
      h('header.conversation-head', {}, back, h('div.titles', {}, this.title, this.subtitle), this.info),
      this.scroller, this.jump, this.typing, this.error, this.form);

    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.send();
      }
    });
    this.input.addEventListener('input', () => this.typed());
    // A pasted picture or files dropped on the conversation join the message being written.
    if (this.attach && this.attach.add) {
      this.input.addEventListener('paste', (e) => {
        const files = [...((e.clipboardData && e.clipboardData.files) || [])];
        if (files.length) {
          e.preventDefault();
          this.attach.add(files);
        }
      });
      this.element.addEventListener('dragover', (e) => {
        if (e.dataTransfer && [...e.dataTransfer.types].includes('Files')) e.preventDefault();
      });
      this.element.addEventListener('drop', (e) => {
        const files = [...((e.dataTransfer && e.dataTransfer.files) || [])];
        if (files.length) {
          e.preventDefault();
          this.attach.add(files);
        }
      });
    }
    this.scroller.addEventListener('scroll', () => this.scrolled());
    this.start();
  }

  get conversation() {
    return this.view.id ? this.app.chats.conversation(this.view.id) : this.app.chats.directWith(this.view.user);
  }

  async start() {
    const c = this.conversation;
    if (c && !this.view.id) this.view = { id: c.id };
    if (!this.view.id) {
      // A direct chat not made yet: the first message makes it. History of a
      // user who does not exist is `not_found`, said here before any typing.
      try {
        await this.app.connection.request({ type: 'history', conversation: { user: this.view.user }, limit: 1 });
      } catch (e) {
        if (e.code !== 'offline') this.error.textContent = errorText('chat.new', e);
      }
    } else if (c && !c.historyLoaded) {
      this.older.textContent = t('chat.conversation.loading');
      await this.app.chats.loadHistory(c.id, null).catch(() => {});
      this.older.textContent = '';
    }
    this.render();
    this.toBottom();
    // A first page too short to scroll gives no scroll event to load the next.
    if (this.scroller.scrollHeight <= this.scroller.clientHeight) this.loadOlder();
  }

  /** The direct chat was made by its first message: from now on it is a conversation like any. */
  adopt(id) {
    if (!this.view.id) this.view = { id };
  }

  render() {
    const c = this.conversation;
    if (c && !this.view.id) this.view = { id: c.id };
    const name = c ? c.chat : this.view.user;
    this.title.textContent = name;
    const isGroup = c && c.kind === 'group';
    this.info.hidden = !isGroup;
    if (isGroup) this.subtitle.textContent = t('chat.group.members_count', { count: c.members.length });
    else this.subtitle.textContent = this.app.chats.online.has(name) ? t('chat.presence.online') : '';
    this.subtitle.classList.toggle('online', !isGroup && this.app.chats.online.has(name));

    const typing = c ? this.app.chats.typingIn(c.id) : [];
    this.typing.textContent = typing.length ? t('chat.typing', { names: nameList(typing), count: typing.length }) : '';

    const atBottom = this.stickToBottom;
    const wanted = [];
    if (c) for (const seq of [...c.messages.keys()].sort((a, b) => a - b)) wanted.push(['m', c.messages.get(seq)]);
    for (const item of this.app.outbox.for(this.view)) wanted.push(['o', item]);
    const seenIds = new Set(wanted.filter(([k]) => k === 'm').map(([, m]) => m.id));
    const keep = new Set();
    let previous = null;
    for (const [kind, value] of wanted) {
      // A message already stored is shown once, by seq, even before the outbox lets go of it.
      if (kind === 'o' && seenIds.has(value.id)) continue;
      const key = kind === 'm' ? `s${value.seq}` : `c${value.id}`;
      keep.add(key);
      let node = this.nodes.get(key);
      if (!node) {
        node = kind === 'm' ? this.messageNode(c, value) : this.pendingNode(value);
        this.nodes.set(key, node);
      }
      if (kind === 'm') this.updateState(c, value, node);
      else this.updatePending(value, node);
      const expected = previous ? previous.nextSibling : this.list.firstChild;
      if (expected !== node) this.list.insertBefore(node, expected);
      previous = node;
    }
    for (const [key, node] of this.nodes) {
      if (!keep.has(key)) {
        node.remove();
        this.nodes.delete(key);
      }
    }
    if (c && c.more === false && c.historyLoaded) this.older.textContent = t('chat.conversation.start');
    if (atBottom) this.toBottom();
    if (c && document.visibilityState === 'visible' && this.stickToBottom) this.app.chats.markRead(c);
  }

  messageNode(c, m) {
    const mine = m.from === this.app.me;
    const body = [];
    if (!mine && c.kind === 'group') body.push(h('p.from', {}, m.from));
    if (m.attachments && m.attachments.length) {
      body.push(this.app.attachments
        ? this.app.attachments.renderAttachments(m.attachments, { token: this.app.device.token, t })
        : h('p.attachments-note', { text: { key: 'chat.message.attachments', params: { count: m.attachments.length } } }));
    }
    if (m.text) body.push(h('p.text', { dir: 'auto' }, m.text));
    const meta = h('p.meta', {}, h('time', { datetime: new Date(m.sent_at).toISOString(), title: globalThis.imboxI18n.dateTime(m.sent_at) }, when(m.sent_at)));
    if (mine) meta.append(h('span.state'));
    return h(`li.message.${mine ? 'mine' : 'theirs'}`, { 'data-seq': m.seq, 'data-id': m.id, 'data-from': m.from }, ...body, meta);
  }

  updateState(c, m, node) {
    if (m.from !== this.app.me) return;
    const others = (c.members.length ? c.members : [c.chat]).filter((u) => u !== this.app.me && !u.startsWith('#'));
    const marks = this.app.chats.marks(c.id);
    const read = others.filter((u) => marks[u] && marks[u].read >= m.seq).length;
    const delivered = others.filter((u) => marks[u] && marks[u].delivered >= m.seq).length;
    let state = 'stored';
    let text = t('chat.state.stored');
    if (others.length && read === others.length) {
      state = 'read';
      text = t('chat.state.read');
    } else if (c.kind === 'group' && read > 0) {
      state = 'read-some';
      text = t('chat.state.read_by', { count: read, total: others.length });
    } else if (others.length && delivered === others.length) {
      state = 'delivered';
      text = t('chat.state.delivered');
    }
    node.dataset.state = state;
    const span = node.querySelector('.state');
    if (span.textContent !== text) span.textContent = text;
  }

  pendingNode(item) {
    const body = [];
    if (item.attachments && item.attachments.length) {
      body.push(this.app.attachments
        ? this.app.attachments.renderAttachments(item.attachments, { token: this.app.device.token, t })
        : h('p.attachments-note', { text: { key: 'chat.message.attachments', params: { count: item.attachments.length } } }));
    }
    if (item.text) body.push(h('p.text', { dir: 'auto' }, item.text));
    return h('li.message.mine.pending', { 'data-id': item.id, 'data-state': 'pending' }, ...body,
      h('p.meta', {}, h('span.state')));
  }

  updatePending(item, node) {
    const span = node.querySelector('.state');
    if (item.failed) {
      node.dataset.state = 'failed';
      span.textContent = errorText('chat.send', item.failed);
      if (!node.querySelector('.discard')) {
        node.querySelector('.meta').append(h('button.discard', { type: 'button', text: { key: 'chat.send.discard' }, onclick: () => this.app.outbox.discard(item.id) }));
      }
    } else {
      node.dataset.state = 'pending';
      span.textContent = t('chat.state.pending');
    }
  }

  async send() {
    const text = this.input.value.trim();
    this.error.textContent = '';
    let attachments = [];
    if (this.attach) {
      try {
        attachments = await this.attach.take();
      } catch (e) {
        // The attachments module's errors come translated already.
        this.error.textContent = e.name === 'AttachmentError' ? e.message : errorText('chat.send', e);
        return;
      }
    }
    if (!text && !attachments.length) return;
    const limit = (this.app.connection.welcome && this.app.connection.welcome.limits && this.app.connection.welcome.limits.max_text_bytes) || 16384;
    if (new TextEncoder().encode(text).length > limit) {
      this.error.textContent = t('chat.send.error.too_large');
      return;
    }
    this.input.value = '';
    if (this.attach) this.attach.clear();
    this.app.outbox.add(this.view, text, attachments);
    this.stickToBottom = true;
    this.render();
    this.input.focus();
  }

  typed() {
    const now = Date.now();
    if (!this.view.id || !this.input.value || now - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = now;
    this.app.connection.request({ type: 'typing', conversation: { id: this.view.id } }).catch(() => {});
  }

  scrolled() {
    const s = this.scroller;
    const fromBottom = s.scrollHeight - s.scrollTop - s.clientHeight;
    this.stickToBottom = fromBottom < NEAR_BOTTOM_PX;
    this.jump.hidden = this.stickToBottom;
    if (this.stickToBottom) {
      const c = this.conversation;
      if (c && document.visibilityState === 'visible') this.app.chats.markRead(c);
    }
    if (s.scrollTop < NEAR_TOP_PX) this.loadOlder();
  }

  async loadOlder() {
    const c = this.conversation;
    if (!c || !c.more || this.loadingOlder || !c.messages.size) return;
    this.loadingOlder = true;
    this.older.textContent = t('chat.conversation.loading');
    const oldest = Math.min(...c.messages.keys());
    // Keep the reader's place: the distance from the bottom stays the same.
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    try {
      await this.app.chats.loadHistory(c.id, oldest);
      this.older.textContent = '';
      this.render();
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
    } catch (e) {
      this.older.textContent = errorText('chat.conversation', e);
    } finally {
      this.loadingOlder = false;
    }
  }

  toBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.stickToBottom = true;
    this.jump.hidden = true;
  }
}
