// Sign-in: username and password make a new device of the user (a `login`
// over the WebSocket), whose token this browser keeps.

import { Connection } from './connection.js';
import { deviceName, saveDevice } from './device.js';
import { certificateNote } from './certificate.js';
import { errorText, field, h, languageSwitch, t } from './dom.js';

/** Shows the sign-in form in `main`; resolves with the stored device. `notice` explains why (revoked…). */
export function signIn(main, noticeKey) {
  return new Promise((resolve) => {
    const error = h('p.error#signin-error', { role: 'alert' });
    const button = h('button.primary', { type: 'submit', text: { key: 'chat.signin.submit' } });
    const form = h('form#signin-form', { novalidate: true },
      field('signin-username', 'chat.signin.username', { type: 'text', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true }),
      field('signin-password', 'chat.signin.password', { type: 'password', autocomplete: 'current-password', required: true }),
      error, button);
    const notice = noticeKey ? h('p.notice#signin-notice', { role: 'status', text: { key: noticeKey } }) : null;
    main.replaceChildren(h('div.page', {},
      h('div.page-head', {}, h('h1', { text: { key: 'chat.signin.title' } }), languageSwitch()),
      h('p', { text: { key: 'chat.signin.intro', params: { box: document.body.dataset.boxName || '' } } }),
      notice, form,
      h('p', {}, h('a', { href: '/login', text: { key: 'chat.signin.admin' } })),
      certificateNote()));
    form.querySelector('input').focus();

    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const username = form.elements['signin-username'].value.trim().toLowerCase();
      const password = form.elements['signin-password'].value;
      if (!username || !password) {
        error.textContent = t('chat.signin.missing');
        return;
      }
      error.textContent = '';
      button.disabled = true;
      // One attempt: a wrong password is not retried with back-off.
      let connection = null;
      const finish = (err) => {
        connection.stop('done');
        button.disabled = false;
        if (err) error.textContent = err;
      };
      connection = new Connection(async (request) => {
        try {
          const authenticated = await request({ type: 'login', username, password, device_name: deviceName() });
          const device = saveDevice(authenticated, authenticated.token);
          finish(null);
          resolve(device);
          return authenticated;
        } catch (err) {
          finish(errorText('chat.signin', err));
          throw err;
        }
      });
      connection.addEventListener('offline', () => finish(t('chat.error.offline')));
      connection.start();
    });
  });
}
