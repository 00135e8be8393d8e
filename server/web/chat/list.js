// The conversation list: most recent first, with unread counts, the last
// message and presence; a form that opens a direct chat by user name.

import { h, nameList, t } from './dom.js';

export class ConversationList {
  constructor(app) {
    this.app = app;
    this.items = h('ul.conversations#conversations', { 'aria-labelledby': 'list-title' });
    this.empty = h('p.empty#list-empty', { text: { key: 'chat.list.empty' } });
    const input = h('input#new-chat-user', {
      type: 'text', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', required: true,
      pattern: '[a-z0-9][a-z0-9_.\\-]{0,31}', 'data-i18n-attr': 'placeholder:chat.list.new_placeholder',
    });
    this.newError = h('p.error#new-chat-error', { role: 'alert' });
    this.newChat = h('form.new-chat#new-chat-form', {
      onsubmit: (e) => {
        e.preventDefault();
        const user = input.value.trim().toLowerCase();
        this.newError.textContent = '';
        if (!/^[a-z0-9][a-z0-9_.-]{0,31}$/.test(user)) {
          this.newError.textContent = t('chat.list.bad_name');
          return;
        }
        if (user === app.me) {
          this.newError.textContent = t('chat.list.self');
          return;
        }
        input.value = '';
        app.openDirect(user);
      },
    },
    h('label', { for: 'new-chat-user', text: { key: 'chat.list.new_label' } }),
    h('div.row', {}, input, h('button', { type: 'submit', text: { key: 'chat.list.new_submit' } })),
    this.newError);
    this.element = h('nav.list#list', { 'aria-labelledby': 'list-title' },
      h('div.list-head', {},
        h('h2#list-title', { text: { key: 'chat.list.title' } }),
        h('button#new-group', { type: 'button', text: { key: 'chat.list.new_group' }, onclick: () => app.show({ create: true }) })),
      this.newChat, this.empty, this.items);
    globalThis.imboxI18n.apply(this.element);
  }

  render() {
    const { chats } = this.app;
    const rows = chats.sorted().map((c) => this.row(c));
    // Rows are rebuilt; keyboard focus stays on the same conversation.
    const focused = this.items.contains(document.activeElement) ? document.activeElement.dataset.conversation : null;
    this.items.replaceChildren(...rows);
    if (focused) {
      const again = this.items.querySelector(`button[data-conversation="${focused}"]`);
      if (again) again.focus();
    }
    this.empty.hidden = rows.length > 0;
  }

  /** Marks the row of the conversation on screen (aria-current), and no other. */
  markCurrent() {
    const current = this.app.view && this.app.view.id ? String(Number(this.app.view.id)) : null;
    for (const button of this.items.querySelectorAll('button[data-conversation]')) {
      if (button.dataset.conversation === current) button.setAttribute('aria-current', 'true');
      else button.removeAttribute('aria-current');
    }
  }

  row(c) {
    const unread = this.app.chats.unread(c);
    const current = this.app.view && Number(this.app.view.id) === c.id;
    const typing = this.app.chats.typingIn(c.id);
    let preview = '';
    if (typing.length) preview = t('chat.typing', { names: nameList(typing), count: typing.length });
    else if (c.last) {
      const text = c.last.text || t('chat.message.attachments', { count: (c.last.attachments || []).length });
      preview = c.kind === 'group' || c.last.from === this.app.me ? t('chat.list.preview', { from: c.last.from === this.app.me ? t('chat.you') : c.last.from, text }) : text;
    }
    const online = c.kind === 'direct' && this.app.chats.online.has(c.chat);
    const button = h('button.chat-row', {
      type: 'button',
      'data-conversation': c.id,
      'data-chat': c.chat,
      'aria-current': current ? 'true' : null,
      onclick: () => this.app.show({ id: c.id }),
    },
    h('span.name', {}, c.chat,
      online ? h('span.presence', { role: 'img', 'aria-label': t('chat.presence.online'), title: t('chat.presence.online') }) : null),
    c.last ? h('span.when', {}, when(c.last.sent_at)) : null,
    h('span.preview', {}, preview),
    unread > 0 ? h('span.unread', { 'aria-label': t('chat.list.unread', { count: unread }) }, globalThis.imboxI18n.number(unread)) : null);
    return h('li', {}, button);
  }
}

/** Today's messages by their time, older ones by their day. */
export function when(ms) {
  const date = new Date(ms);
  const now = new Date();
  return date.toDateString() === now.toDateString() ? globalThis.imboxI18n.time(ms) : globalThis.imboxI18n.day(ms);
}
