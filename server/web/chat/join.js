// The join page (/join#v=1&fp=…&invite=…): the invite rides in the
// fragment, so it never reaches a server log. The page offers the same query
// as an imbox:pair link for phones with an app, and registers this browser
// as the new member's first device.

import { Connection } from './connection.js';
import { deviceName, saveDevice } from './device.js';
import { certificateNote } from './certificate.js';
import { errorText, field, h, languageSwitch, t } from './dom.js';

const USER = /^[a-z0-9][a-z0-9_.-]{0,31}$/;

function page(query) {
  const main = document.getElementById('main');
  const params = new URLSearchParams(query);
  const invite = params.get('invite');
  const boxName = params.get('name') || document.body.dataset.boxName || '';
  const intro = h('p', { text: { key: 'join.intro', params: { box: boxName } } });
  if (!invite) {
    main.replaceChildren(h('div.page', {},
      h('h1', { text: { key: 'join.title' } }),
      h('p.error#join-error', { role: 'alert', text: { key: 'join.no_invite' } }),
      h('p', {}, h('a', { href: '/chat', text: { key: 'join.to_signin' } }))));
    return;
  }
  const error = h('p.error#join-error', { role: 'alert' });
  const button = h('button.primary', { type: 'submit', text: { key: 'join.submit' } });
  const form = h('form#join-form', { novalidate: true },
    field('join-username', 'join.username', { type: 'text', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true }, 'join.username_hint'),
    field('join-password', 'join.password', { type: 'password', autocomplete: 'new-password', required: true }, 'join.password_hint'),
    field('join-password2', 'join.password2', { type: 'password', autocomplete: 'new-password', required: true }),
    error, button);
  main.replaceChildren(h('div.page', {},
    h('div.page-head', {}, h('h1', { text: { key: 'join.heading', params: { box: boxName } } }), languageSwitch()),
    intro, form,
    h('section.app-link', { 'aria-labelledby': 'app-link-title' },
      h('h2#app-link-title', { text: { key: 'join.app_title' } }),
      h('p', { text: { key: 'join.app_text' } }),
      h('p', {}, h('a#pair-link', { href: `imbox:pair?${query}`, text: { key: 'join.app_link' } }))),
    certificateNote(),
    h('p', {}, h('a', { href: '/chat', text: { key: 'join.have_account' } }))));

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const username = form.elements['join-username'].value.trim().toLowerCase();
    const password = form.elements['join-password'].value;
    error.textContent = '';
    if (!USER.test(username)) {
      error.textContent = t('join.error.invalid_name');
      return;
    }
    if (password.length < 8) {
      error.textContent = t('join.error.weak_password');
      return;
    }
    if (password !== form.elements['join-password2'].value) {
      error.textContent = t('join.mismatch');
      return;
    }
    button.disabled = true;
    let connection = null;
    const finish = (message) => {
      connection.stop('done');
      button.disabled = false;
      if (message) error.textContent = message;
    };
    connection = new Connection(async (request) => {
      try {
        const authenticated = await request({ type: 'register', username, password, invite, device_name: deviceName() });
        saveDevice(authenticated, authenticated.token);
        finish(null);
        // The invite is used up: it leaves the address bar and the history.
        history.replaceState(null, '', '/join');
        location.assign('/chat');
        return authenticated;
      } catch (err) {
        finish(errorText('join', err));
        throw err;
      }
    });
    connection.addEventListener('offline', () => finish(t('chat.error.offline')));
    connection.start();
  });
}

globalThis.imboxI18n.ready.then(() => {
  const query = location.hash.replace(/^#/, '');
  page(query);
});
