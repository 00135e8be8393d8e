// The chat app's entry: once the catalog is loaded, the device this browser
// keeps (localStorage "imbox.device") opens a session; without one, the
// sign-in form makes one. The app then shows the conversation list and one
// conversation (two screens on a phone, side by side on a desktop).

import * as attachments from './attachments.js';
import { connectionBanner } from './banner.js';
import { Chats } from './chats.js';
import { Connection } from './connection.js';
import { ConversationView } from './conversation.js';
import { forgetDevice, loadDevice } from './device.js';
import { h, languageSwitch, t } from './dom.js';
import { createGroupView, groupInfoView } from './group.js';
import { registerServiceWorker } from './install.js';
import { ConversationList } from './list.js';
import { ask, canAsk, notifyMessage, showUnread } from './notify.js';
import { forgetPush, pushAvailable, pushIsOn, turnPushOff, turnPushOn } from './push.js';
import { Outbox } from './outbox.js';
import { signIn } from './signin.js';
import { StreamReader } from './sync.js';

const main = document.getElementById('main');

class App {
  constructor(device, attachments) {
    this.device = device;
    this.me = device.user;
    this.attachments = attachments;
    this.view = null;
    this.screen = null;
    this.changedIds = new Set();
    this.changedAll = false;
    this.drawQueued = false;
    this.connection = new Connection((request) => request({ type: 'resume', token: device.token }));
    this.chats = new Chats(this.connection, this.me);
    this.outbox = new Outbox(this.connection, this.me);
    this.reader = new StreamReader(this.connection, device, {
      apply: (item, { live }) => this.entry(item, live),
      resync: () => this.reload(),
      caughtUp: () => {},
    });
    this.list = new ConversationList(this);
    this.pane = h('div.pane#pane', {}, h('p.placeholder#pick', { text: { key: 'chat.pick' } }));

    this.connection.addEventListener('ready', (e) => {
      // Who is online now comes with the session; changes come as events.
      this.chats.resetPresence(e.detail.online || []);
      this.reload();
    });
    this.connection.addEventListener('event', (e) => this.event(e.detail));
    this.connection.addEventListener('stopped', (e) => this.stopped(e.detail.reason));
    this.chats.addEventListener('change', (e) => this.changed(e.detail));
    this.outbox.addEventListener('change', () => this.changed({}));
    this.outbox.addEventListener('sent', (e) => {
      const { item, sent } = e.detail;
      // A new direct chat has its conversation now: the view follows it.
      if (this.screen instanceof ConversationView) this.screen.adopt(Number(sent.conversation));
      if (!item.conversation) this.chats.reloadSoon();
    });
    // Escape leaves a conversation or a group page for the list (the phone's back button, by keyboard).
    this.pane.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.view && !e.defaultPrevented) this.show(this.view.group ? { id: this.view.group } : null);
    });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && this.screen instanceof ConversationView) this.screen.render();
    });

    const notifyButton = h('button#notify-enable', { type: 'button', hidden: !canAsk(), text: { key: 'chat.notify.enable' } });
    notifyButton.addEventListener('click', async () => {
      await ask();
      notifyButton.hidden = !canAsk();
    });
    // Offered only where the browser can (a trusted certificate, a push service): see push.js.
    const pushButton = h('button#push-toggle', { type: 'button', hidden: true, text: { key: 'chat.push.enable' } });
    const showPush = async () => {
      const on = await pushIsOn();
      pushButton.dataset.on = on ? '1' : '';
      pushButton.textContent = t(on ? 'chat.push.disable' : 'chat.push.enable');
      pushButton.hidden = !(on || await pushAvailable());
    };
    pushButton.addEventListener('click', async () => {
      pushButton.disabled = true;
      try {
        if (pushButton.dataset.on) await turnPushOff(this.connection);
        else await turnPushOn(this.connection);
      } catch (e) {
        // The person reads why (permission refused, no push service, the box said no).
        window.alert(t('chat.push.failed', { error: e.message || String(e) }));
      }
      pushButton.disabled = false;
      notifyButton.hidden = !canAsk();
      await showPush();
    });
    showPush();
    // A click on a push notification opens its conversation (sw.js).
    if ('serviceWorker' in navigator) {
      navigator.serviceWorker.addEventListener('message', (e) => {
        const id = e.data && e.data.type === 'open' ? Number(e.data.conversation) : NaN;
        if (Number.isSafeInteger(id) && id > 0) this.openWhenKnown(id);
      });
    }
    const opened = /^#c=(\d+)$/.exec(location.hash);
    if (opened) {
      history.replaceState(null, '', location.pathname);
      this.openWhenKnown(Number(opened[1]));
    }
    const admin = device.admin ? h('a#admin-link', { href: '/admin', text: { key: 'chat.admin' } }) : null;
    const logout = h('button#logout', { type: 'button', text: { key: 'chat.logout' }, onclick: () => this.logout() });
    const language = languageSwitch();
    this.shell = h('div.app#app', {},
      h('header.top', {},
        h('h1', {}, document.body.dataset.boxName || t('chat.title')),
        h('p.me#me', {}, t('chat.signed_in_as', { name: this.me })),
        h('div.actions', {}, notifyButton, pushButton, admin, language, logout)),
      connectionBanner(this.connection),
      h('div.columns', {}, this.list.element, this.pane));
    globalThis.imboxI18n.apply(this.shell);
    main.replaceChildren(this.shell);
    this.list.render();
    showUnread(0);
    this.connection.start();
  }

  /** Shows conversation `id` now, or once the conversations are loaded. */
  openWhenKnown(id) {
    if (this.chats.conversation(id)) this.show({ id });
    else this.pendingOpen = id;
  }

  async reload() {
    try {
      await this.chats.loadConversations();
      if (this.pendingOpen && this.chats.conversation(this.pendingOpen)) {
        this.show({ id: this.pendingOpen });
        this.pendingOpen = null;
      }
      // The open conversation may have missed messages while away (resync).
      if (this.view && this.view.id && this.chats.conversation(this.view.id)) {
        await this.chats.loadHistory(this.view.id, null);
      }
    } catch (e) {
      // Offline again: the next session reloads.
    }
  }

  entry(item, live) {
    const c = this.chats.apply(item);
    if (item.type === 'message') this.outbox.settled(item.id);
    if (!c || !live) return;
    const onScreen = this.view && Number(this.view.id) === c.id && document.visibilityState === 'visible';
    if (!onScreen) notifyMessage(c, item, (id) => this.show({ id }));
  }

  event(ev) {
    if (ev.type === 'typing') this.chats.setTyping(Number(ev.conversation), ev.user);
    else if (ev.type === 'presence') this.chats.setPresence(ev.user, Boolean(ev.online));
  }

  changed(detail) {
    // Changes made in one task (a page of the stream, a history answer) are
    // drawn once, at the end of it: the list is rebuilt whole, which a page
    // of 200 entries would otherwise do 200 times.
    if (detail.id) this.changedIds.add(Number(detail.id));
    else this.changedAll = true;
    if (this.drawQueued) return;
    this.drawQueued = true;
    queueMicrotask(() => this.draw());
  }

  draw() {
    const all = this.changedAll;
    const ids = this.changedIds;
    this.drawQueued = false;
    this.changedAll = false;
    this.changedIds = new Set();
    this.list.render();
    showUnread(this.chats.totalUnread());
    if (!this.screen) return;
    if (this.screen instanceof ConversationView) {
      const id = this.screen.view.id;
      if (all || !id || ids.has(Number(id))) this.screen.render();
    } else {
      this.screen.render();
    }
  }

  /** What the second pane shows: { id } a conversation, { user } a new direct chat, { create }, { group }, or null (the list alone). */
  show(view) {
    this.view = view;
    let focus = null;
    if (!view) {
      this.screen = null;
      this.pane.replaceChildren(h('p.placeholder#pick', { text: { key: 'chat.pick' } }));
      this.shell.classList.remove('open');
      const current = this.list.items.querySelector('button');
      if (current) current.focus();
    } else if (view.create) {
      this.screen = createGroupView(this);
      focus = this.screen.focus;
    } else if (view.group) {
      this.screen = groupInfoView(this, Number(view.group));
      focus = this.screen.focus;
    } else {
      this.screen = new ConversationView(this, view);
      focus = () => this.screen.input.focus();
    }
    if (view) {
      this.pane.replaceChildren(this.screen.element);
      this.shell.classList.add('open');
      if (focus) focus();
    }
    // Only which row is current changed: the rows stay (rebuilding them all
    // would delay the conversation's history request).
    this.list.markCurrent();
  }

  openDirect(user) {
    const c = this.chats.directWith(user);
    this.show(c ? { id: c.id } : { user });
  }

  async logout() {
    // The box drops this device's push registration with the logout; the
    // browser's subscription goes too.
    await forgetPush();
    try {
      await this.connection.request({ type: 'logout' });
    } catch (e) {
      // Offline: the token is forgotten here all the same; an admin can revoke it.
    }
    this.end('chat.signin.logged_out');
  }

  stopped(reason) {
    if (reason === 'logout') return;
    this.end(reason === 'revoked' || reason === 'bad_credentials' ? 'chat.signin.revoked' : 'chat.signin.ended');
  }

  end(noticeKey) {
    this.connection.stop('logout');
    forgetDevice();
    localStorage.removeItem(this.outbox.key);
    start(noticeKey);
  }
}

async function start(noticeKey) {
  let device = loadDevice();
  if (!device) device = await signIn(main, noticeKey);
  const app = new App(device, attachments);
  globalThis.imboxChat = app; // for the browser tests and the curious
}

globalThis.imboxI18n.ready.then(() => start(null));
// An offline shell where the browser trusts the box's certificate; elsewhere nothing happens.
registerServiceWorker();
