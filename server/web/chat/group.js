// Groups: the form that creates one (a name and members), and a group's
// page: its members and admins, adding and removing members (admins only),
// leaving.

import { errorText, field, h, t } from './dom.js';

const NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const USER = /^[a-z0-9][a-z0-9_.-]{0,31}$/;

function header(app, titleKey, back) {
  return h('header.conversation-head', {},
    h('button.back#back', { type: 'button', text: { key: 'chat.back' }, onclick: back }),
    h('div.titles', {}, h('h2#group-title', { text: { key: titleKey } })));
}

export function createGroupView(app) {
  const error = h('p.error#group-error', { role: 'alert' });
  const form = h('form.panel-form#group-form', { novalidate: true },
    field('group-name', 'chat.group.name', { type: 'text', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', required: true }, 'chat.group.name_hint'),
    field('group-members', 'chat.group.members_input', { type: 'text', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' }, 'chat.group.members_hint'),
    error,
    h('button.primary', { type: 'submit', text: { key: 'chat.group.create' } }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const name = form.elements['group-name'].value.trim().toLowerCase().replace(/^#/, '');
    const members = form.elements['group-members'].value.split(/[\s,，]+/).map((u) => u.trim().toLowerCase()).filter(Boolean);
    if (!NAME.test(name)) {
      error.textContent = t('chat.group.bad_name');
      return;
    }
    const bad = members.find((u) => !USER.test(u));
    if (bad) {
      error.textContent = t('chat.group.bad_member', { name: bad });
      return;
    }
    try {
      const answer = await app.connection.request({ type: 'create_group', name, members: members.filter((u) => u !== app.me) });
      const c = app.chats.merge(answer.conversation);
      app.chats.changed();
      app.show({ id: c.id });
    } catch (err) {
      error.textContent = errorText('chat.group', err);
    }
  });
  const element = h('section.conversation.panel#group-create', { 'aria-labelledby': 'group-title' },
    header(app, 'chat.group.create_title', () => app.show(null)), form);
  return { element, render() {}, focus: () => form.querySelector('input').focus() };
}

export function groupInfoView(app, id) {
  const list = h('ul.members#group-members-list');
  const status = h('p.notice#group-status', { role: 'status' });
  const addInput = h('input#group-add-user', { type: 'text', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', required: true });
  const addForm = h('form.panel-form#group-add-form', {},
    h('label', { for: 'group-add-user', text: { key: 'chat.group.add_label' } }),
    h('div.row', {}, addInput, h('button', { type: 'submit', text: { key: 'chat.group.add' } })));
  const leave = h('button.danger#group-leave', { type: 'button', text: { key: 'chat.group.leave' } });
  const title = h('h2#group-title');

  const act = async (req, doneKey, params) => {
    status.textContent = '';
    try {
      const answer = await app.connection.request(req);
      if (answer.conversation) app.chats.merge(answer.conversation);
      app.chats.changed(id);
      status.textContent = t(doneKey, params);
      return true;
    } catch (err) {
      status.textContent = errorText('chat.group', err);
      return false;
    }
  };

  addForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const user = addInput.value.trim().toLowerCase();
    if (!USER.test(user)) {
      status.textContent = t('chat.group.bad_member', { name: user });
      return;
    }
    if (await act({ type: 'add_member', group: { id }, user }, 'chat.group.added', { name: user })) addInput.value = '';
  });
  leave.addEventListener('click', async () => {
    const c = app.chats.conversation(id);
    if (!c || !window.confirm(t('chat.group.leave_confirm', { group: c.chat }))) return;
    if (await act({ type: 'leave', group: { id } }, 'chat.group.left', {})) {
      app.chats.conversations.delete(id);
      app.chats.changed();
      app.show(null);
    }
  });

  const element = h('section.conversation.panel#group-page', { 'aria-labelledby': 'group-title' },
    h('header.conversation-head', {},
      h('button.back#back', { type: 'button', text: { key: 'chat.back' }, onclick: () => app.show({ id }) }),
      h('div.titles', {}, title)),
    h('div.panel-body', {},
      h('h3', { text: { key: 'chat.group.members' } }), list, status, addForm, leave));

  function render() {
    const c = app.chats.conversation(id);
    if (!c) return;
    title.textContent = c.chat;
    const admin = c.admins.includes(app.me);
    addForm.hidden = !admin;
    list.replaceChildren(...[...c.members].sort().map((user) => {
      const tags = [];
      if (c.admins.includes(user)) tags.push(h('span.tag', { text: { key: 'chat.group.admin' } }));
      if (user === app.me) tags.push(h('span.tag', { text: { key: 'chat.you' } }));
      if (app.chats.online.has(user)) tags.push(h('span.presence', { role: 'img', title: t('chat.presence.online'), 'aria-label': t('chat.presence.online') }));
      const remove = admin && user !== app.me
        ? h('button.small', {
          type: 'button',
          'aria-label': t('chat.group.remove_label', { name: user }),
          text: { key: 'chat.group.remove' },
          onclick: () => act({ type: 'remove_member', group: { id }, user }, 'chat.group.removed', { name: user }),
        })
        : null;
      return h('li', { 'data-member': user }, h('span.name', {}, user), ...tags, remove);
    }));
  }
  render();
  return { element, render, focus: () => title.focus() };
}
