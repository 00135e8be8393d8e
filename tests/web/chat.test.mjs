// The web chat app at /chat, in Debian's chromium against a real imboxd on
// loopback: people chat directly and in groups, messages survive going
// offline and reloads, several tabs stay in step, typing/presence/receipts
// reach the other side, a CLI user and a web user converse, and the title
// and notifications count what is unread. One box for the whole file.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  bin, claimCode, eventually, fitsAndShoot, launchBrowser, run, startBox,
} from './box.mjs';
import { openChat, signIn as signInAs, toList } from './chat-page.mjs';
import { axeViolations, englishLeft, overflowing } from './i18n-check.mjs';

const OWNER = 'olivia';
const PASSWORD = 'violet tractor lantern 93';
const USERS = ['alice', 'bob', 'carol', 'dave'];

describe('the web chat app', () => {
  let box;
  let browser;
  let admin; // an APIRequestContext with the owner's session
  let csrf;
  const contexts = [];
  const pages = {};
  const profiles = fs.mkdtempSync(path.join(os.tmpdir(), 'imbox-chat-cli-'));

  async function context(options = {}) {
    const c = await browser.newContext({
      ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 360, height: 740 }, deviceScaleFactor: 1, locale: 'en-US', ...options,
    });
    contexts.push(c);
    return c;
  }

  const signIn = (page, user) => signInAs(page, box.https, user, PASSWORD);


  const sentTexts = [];

  async function send(page, text) {
    sentTexts.push(...text.split(/\s+/));
    await page.fill('#composer-text', text);
    await page.press('#composer-text', 'Enter');
  }

  /** The texts of the messages on screen, in order. */
  const texts = (page) => page.$$eval('#messages li .text', (els) => els.map((e) => e.textContent));

  async function waitForTexts(page, expected, what) {
    await eventually(what, async () => JSON.stringify(await texts(page)) === JSON.stringify(expected))
      .catch(async (e) => { throw new Error(`${e.message}: on screen ${JSON.stringify(await texts(page))}`); });
  }

  before(async () => {
    box = await startBox();
    browser = await launchBrowser();
    const ctx = await context();
    admin = ctx.request;
    const claim = await admin.post(`${box.https}/api/setup/claim`, {
      data: { code: claimCode(box.claimFile), username: OWNER, password: PASSWORD, password_confirm: PASSWORD },
      headers: { Origin: box.https },
    });
    assert.equal(claim.status(), 201, await claim.text());
    csrf = (await claim.json()).csrf_token;
    for (const username of USERS) {
      const made = await admin.post(`${box.https}/api/admin/users`, { data: { username, password: PASSWORD }, headers: { 'X-CSRF-Token': csrf, Origin: box.https } });
      assert.equal(made.status(), 201, await made.text());
    }
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    if (browser) await browser.close();
    if (box) await box.stop();
    fs.rmSync(profiles, { recursive: true, force: true });
  });

  it('signs in, refusing a wrong password first, and shows the certificate to compare', async () => {
    const page = await (await context()).newPage();
    pages.alice = page;
    await page.goto(`${box.https}/chat`);
    const digest = await page.getAttribute('body', 'data-certificate');
    assert.match(digest, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(await page.textContent('#certificate-sha256'), digest);
    await page.fill('#signin-username', 'alice');
    await page.fill('#signin-password', 'not the password');
    await page.click('#signin-form button[type="submit"]');
    await page.waitForFunction(() => /Wrong user name or password/.test(document.getElementById('signin-error').textContent));
    await signIn(page, 'alice');
    const device = JSON.parse(await page.evaluate(() => localStorage.getItem('imbox.device')));
    assert.equal(device.user, 'alice');
    assert.equal(typeof device.token, 'string');
    assert.equal(device.admin, false);
    assert.equal(await page.locator('#admin-link').count(), 0, 'no admin link for a member');
  });

  it('two people chat directly, both ways, with presence, typing, unread counts and read receipts', async () => {
    const alice = pages.alice;
    const bob = await (await context()).newPage();
    pages.bob = bob;
    await signIn(bob, 'bob');
    await openChat(alice, 'bob');
    await send(alice, 'hello bob');
    await alice.waitForSelector('#messages li.mine[data-seq="1"]');

    // Bob's list shows the conversation with one unread message, and the title counts it.
    const row = bob.locator('#conversations button[data-chat="alice"]');
    await row.waitFor();
    await eventually('the unread count', async () => (await row.locator('.unread').textContent().catch(() => '')) === '1');
    assert.match(await row.locator('.preview').textContent(), /hello bob/);
    await eventually('the title', async () => (await bob.title()) === '(1) Chat');
    // Bob goes away and comes back (a reload): Alice, who shares a conversation with him now, sees it.
    await bob.reload();
    await bob.waitForFunction(() => globalThis.imboxChat && globalThis.imboxChat.connection.ready);
    await alice.waitForFunction(() => document.getElementById('conversation-status').textContent === 'online');

    await eventually('delivered', async () => (await alice.getAttribute('#messages li[data-seq="1"]', 'data-state')) === 'delivered');
    await openChat(bob, 'alice');
    // Alice was online before Bob's new session began: the session says so.
    await bob.waitForFunction(() => document.getElementById('conversation-status').textContent === 'online');
    await waitForTexts(bob, ['hello bob'], 'the message at bob');
    await eventually('read', async () => (await alice.getAttribute('#messages li[data-seq="1"]', 'data-state')) === 'read');
    assert.equal(await alice.textContent('#messages li[data-seq="1"] .state'), 'read');
    // A browser that signs in only now (a new device) knows it was read: the
    // box tells the markers with the conversations.
    const fresh = await (await context()).newPage();
    await signIn(fresh, 'alice');
    await openChat(fresh, 'bob');
    await eventually('read on a new device', async () => (await fresh.getAttribute('#messages li[data-seq="1"]', 'data-state')) === 'read');
    await fresh.context().close();
    await eventually('the title without unread', async () => (await bob.title()) === 'Chat');

    await bob.type('#composer-text', 'hi');
    await alice.waitForFunction(() => document.getElementById('typing').textContent === 'bob is typing…');
    await bob.press('#composer-text', 'Enter');
    await waitForTexts(alice, ['hello bob', 'hi'], 'the answer at alice');
    await eventually('the typing notice to go', async () => (await alice.textContent('#typing')) === '');
    await fitsAndShoot(alice, 'chat-conversation-360');
  });

  it('keeps a message sent while offline as pending, then delivers it once; a reload keeps the conversation', async () => {
    const alice = pages.alice;
    const bob = pages.bob;
    await alice.context().setOffline(true);
    await alice.waitForSelector('#offline', { state: 'visible' });
    assert.match(await alice.textContent('#offline-text'), /Not connected|No network/);
    await send(alice, 'sent while offline');
    const pending = alice.locator('#messages li[data-state="pending"]');
    await pending.waitFor();
    assert.equal(await pending.locator('.text').textContent(), 'sent while offline');
    assert.equal(await pending.locator('.state').textContent(), 'sending…');
    const outbox = await alice.evaluate(() => JSON.parse(localStorage.getItem('imbox.outbox.alice')));
    assert.equal(outbox.length, 1, 'the unsent message is kept in the outbox');

    await alice.context().setOffline(false);
    await alice.waitForSelector('#offline', { state: 'hidden' });
    await waitForTexts(alice, ['hello bob', 'hi', 'sent while offline'], 'the message stored at alice');
    await alice.waitForSelector('#messages li[data-seq="3"]');
    await waitForTexts(bob, ['hello bob', 'hi', 'sent while offline'], 'the message once at bob');
    assert.deepEqual(await alice.evaluate(() => JSON.parse(localStorage.getItem('imbox.outbox.alice'))), []);

    await alice.reload();
    await alice.waitForFunction(() => globalThis.imboxChat && globalThis.imboxChat.connection.ready);
    await openChat(alice, 'bob');
    await waitForTexts(alice, ['hello bob', 'hi', 'sent while offline'], 'the conversation after a reload');
  });

  it('keeps two tabs of one user in step', async () => {
    const first = pages.alice;
    const second = await first.context().newPage();
    await second.goto(`${box.https}/chat`);
    await second.waitForFunction(() => globalThis.imboxChat && globalThis.imboxChat.connection.ready);
    await openChat(second, 'bob');
    await send(second, 'from the second tab');
    const all = ['hello bob', 'hi', 'sent while offline', 'from the second tab'];
    await waitForTexts(first, all, 'the second tab\'s message in the first');
    await waitForTexts(second, all, 'the message in its own tab');
    await waitForTexts(pages.bob, all, 'the message at bob');
    await second.close();
  });

  it('sends a file with a caption from the composer; the other side shows it and downloads the same bytes', async () => {
    const alice = pages.alice;
    const bob = pages.bob;
    await openChat(alice, 'bob');
    const bytes = Buffer.from('minutes of the meeting\n'.repeat(200));
    await alice.setInputFiles('#composer .media-input', { name: 'minutes.txt', mimeType: 'text/plain', buffer: bytes });
    await send(alice, 'the minutes');
    const item = bob.locator('#messages li.theirs', { hasText: 'the minutes' });
    await item.waitFor();
    await item.locator('.media-item').waitFor();
    assert.match(await item.locator('.media-item').textContent(), /minutes\.txt/);
    const [download] = await Promise.all([bob.waitForEvent('download'), item.locator('.media-item button, .media-item a').first().click()]);
    assert.equal(download.suggestedFilename(), 'minutes.txt');
    const saved = await download.path();
    assert.deepEqual(fs.readFileSync(saved), bytes);
  });

  it('gives a member who was offline every group message once, in order', async () => {
    const alice = pages.alice;
    const bob = pages.bob;
    const carol = await (await context()).newPage();
    pages.carol = carol;
    await signIn(carol, 'carol');

    await toList(alice);
    await alice.click('#new-group');
    await alice.fill('#group-name', 'trio');
    await alice.fill('#group-members', 'bob, carol');
    await alice.click('#group-form button[type="submit"]');
    await alice.waitForFunction(() => document.getElementById('conversation-title')?.textContent === '#trio');
    await send(alice, 'group 1');
    await carol.locator('#conversations button[data-chat="#trio"]').waitFor();
    await openChat(bob, '#trio');

    await carol.context().setOffline(true);
    await carol.waitForSelector('#offline', { state: 'visible' });
    const expected = ['group 1'];
    for (let i = 2; i <= 6; i += 1) {
      await send(i % 2 ? alice : bob, `group ${i}`);
      expected.push(`group ${i}`);
      await waitForTexts(i % 2 ? alice : bob, expected, `group ${i} stored`);
    }
    await carol.context().setOffline(false);
    await carol.waitForSelector('#offline', { state: 'hidden' });
    await openChat(carol, '#trio');
    await waitForTexts(carol, expected, 'every group message at carol');
    // Carol read them all: Alice's messages say so by count until everyone read.
    await waitForTexts(alice, expected, 'every group message at alice');
    await eventually('read by all', async () => (await alice.getAttribute('#messages li[data-seq="1"]', 'data-state')) === 'read');
    await fitsAndShoot(carol, 'chat-group-360');
  });

  it('lets a group admin add and remove members, and a member leave', async () => {
    const alice = pages.alice;
    await openChat(alice, '#trio');
    await alice.click('#group-info');
    await alice.waitForSelector('#group-members-list li[data-member="carol"]');
    assert.match(await alice.textContent('#group-members-list li[data-member="alice"]'), /admin/);
    await alice.fill('#group-add-user', 'dave');
    await alice.press('#group-add-user', 'Enter');
    await alice.waitForSelector('#group-members-list li[data-member="dave"]');
    await fitsAndShoot(alice, 'chat-group-members-360');
    await alice.click('#group-members-list li[data-member="dave"] button');
    await eventually('dave removed', async () => (await alice.locator('#group-members-list li[data-member="dave"]').count()) === 0);

    const carol = pages.carol;
    await carol.click('#group-info');
    assert.equal(await carol.isVisible('#group-add-form'), false, 'only admins add members');
    carol.once('dialog', (dialog) => dialog.accept());
    await carol.click('#group-leave');
    await eventually('the group gone from carol', async () => (await carol.locator('#conversations button[data-chat="#trio"]').count()) === 0);
    await alice.waitForFunction(() => !document.querySelector('#group-members-list li[data-member="carol"]'));
  });

  it('lets a CLI user and a web user converse both ways', async () => {
    const identity = await run(bin('imboxd'), ['--config', path.join(box.dir, 'empty.toml'), '--data-dir', box.data, 'identity']);
    assert.equal(identity.code, 0, identity.stderr);
    const profile = path.join(profiles, 'dave');
    const cli = (args, input) => run(bin('imbox'), ['--profile', profile, ...args], {}, input);
    const login = await run(bin('imbox'), ['--server', `${box.https.replace('https:', 'wss:')}/ws`, '--pin', identity.stdout.trim(),
      '--profile', profile, 'login', 'dave'], { IMBOX_PASSWORD: PASSWORD });
    assert.equal(login.code, 0, login.stderr);
    const sent = await cli(['send', 'alice', 'hello from the terminal']);
    assert.equal(sent.code, 0, sent.stderr);

    const alice = pages.alice;
    await toList(alice);
    await alice.locator('#conversations button[data-chat="dave"]').waitFor();
    await openChat(alice, 'dave');
    await waitForTexts(alice, ['hello from the terminal'], 'the CLI message in the browser');
    await send(alice, 'hello from the browser');
    await alice.waitForSelector('#messages li[data-seq="2"]');
    const history = await cli(['history', 'alice']);
    assert.equal(history.code, 0, history.stderr);
    const lines = history.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.from, l.text]), [['dave', 'hello from the terminal'], ['alice', 'hello from the browser']]);
  });

  it('scrolls back through history page by page, keeping the place, and jumps to the latest', async () => {
    const alice = pages.alice;
    const carol = pages.carol;
    // 120 messages, sent straight through the app's own session (faster than typing them).
    await alice.evaluate(async () => {
      const { connection } = globalThis.imboxChat;
      await Promise.all(Array.from({ length: 120 }, (_, i) => connection.request({
        type: 'send', to: { user: 'carol' }, id: `history-${i + 1}`, text: `line ${i + 1}`,
      })));
    });
    await toList(carol);
    const row = carol.locator('#conversations button[data-chat="alice"]');
    await row.waitFor();
    await eventually('120 unread', async () => (await row.locator('.unread').textContent().catch(() => '')) === '120');
    assert.equal(await carol.title(), '(120) Chat');
    // A fresh page knows only what history gives it, a page at a time.
    await carol.reload();
    await carol.waitForFunction(() => globalThis.imboxChat && globalThis.imboxChat.connection.ready);
    await eventually('120 unread after a reload', async () => (await row.locator('.unread').textContent().catch(() => '')) === '120');
    await row.click();
    await eventually('the newest page', async () => (await texts(carol)).length === 50);
    const shown = await texts(carol);
    assert.equal(shown[0], 'line 71');
    assert.equal(shown[49], 'line 120');
    await eventually('read', async () => (await carol.title()) === 'Chat');

    // Scrolled to the top: the page before loads, and 'line 71' stays where it was.
    const top = await carol.$eval('#scroller', (el) => el.getBoundingClientRect().top);
    await carol.$eval('#scroller', (el) => { el.scrollTop = 0; });
    await eventually('the older page', async () => (await texts(carol)).length === 100);
    await carol.waitForSelector('#jump-latest', { state: 'visible' });
    const kept = await carol.$eval('#messages li[data-seq="71"]', (el) => el.getBoundingClientRect().top);
    assert.ok(kept >= top && kept < top + 150, `line 71 left the top of the view (${top}): now at ${kept}`);
    await carol.$eval('#scroller', (el) => { el.scrollTop = 0; });
    await eventually('the first page', async () => (await texts(carol)).length === 120);
    await carol.waitForFunction(() => document.getElementById('older').textContent === 'This is the start of the conversation.');
    assert.deepEqual(await texts(carol), Array.from({ length: 120 }, (_, i) => `line ${i + 1}`));
    await fitsAndShoot(carol, 'chat-history-360');

    await carol.click('#jump-latest');
    await carol.waitForSelector('#jump-latest', { state: 'hidden' });
    assert.ok(await carol.$eval('#scroller', (el) => el.scrollHeight - el.scrollTop - el.clientHeight < 5), 'at the bottom');
  });

  it('notifies about a message in a conversation not on screen, once allowed', async () => {
    const ctx = await context({ permissions: ['notifications'] });
    await ctx.grantPermissions(['notifications'], { origin: box.https });
    await ctx.addInitScript(() => {
      globalThis.shown = [];
      const Real = globalThis.Notification;
      class Recorded extends Real {
        constructor(title, options) {
          super(title, options);
          globalThis.shown.push({ title, body: options && options.body });
        }
      }
      globalThis.Notification = Recorded;
    });
    const bob = await ctx.newPage();
    await signIn(bob, 'bob');
    await openChat(bob, '#trio');
    await openChat(pages.alice, '#trio');
    await send(pages.alice, 'are you there?');
    await openChat(pages.alice, 'bob');
    await send(pages.alice, 'bob, are you there?');
    const shown = await eventually('a notification', async () => {
      const list = await bob.evaluate(() => globalThis.shown);
      return list.find((n) => n.body === 'bob, are you there?');
    });
    assert.equal(shown.title, 'alice');
    const all = await bob.evaluate(() => globalThis.shown);
    assert.ok(!all.some((n) => n.body === 'are you there?'), 'no notification for the conversation on screen');
  });

  it('fits every chat screen at 360 px and 1280 px, in English and Chinese', async () => {
    for (const locale of ['en-US', 'zh-CN']) {
      for (const width of [360, 1280]) {
        const ctx = await context({ locale, viewport: { width, height: 800 } });
        const page = await ctx.newPage();
        const tag = `${locale === 'zh-CN' ? 'zh' : 'en'}-${width}`;
        const check = async (name) => {
          const { scrollWidth } = await fitsAndShoot(page, `chat-${name}-${tag}`);
          assert.ok(scrollWidth <= width, `${name} scrolls sideways at ${width} px in ${locale}: ${scrollWidth}`);
          assert.deepEqual(await overflowing(page), [], `${name} overflows at ${width} px in ${locale}`);
          assert.deepEqual(await axeViolations(page), [], `${name} has serious accessibility problems (${locale}, ${width} px)`);
          if (locale === 'zh-CN') {
            // What people wrote stays as they wrote it: names and the tests' messages.
            const allow = [...USERS, OWNER, 'trio', 'Test', ...sentTexts, 'hello', 'from', 'the', 'terminal', 'line', 'minutes', 'txt'];
            assert.deepEqual(await englishLeft(page, { allow }), [], `${name} shows English in Chinese`);
          }
        };
        await page.goto(`${box.https}/chat`);
        await page.waitForSelector('#signin-form');
        await check('signin');
        await page.goto(`${box.https}/join#v=1&fp=sha256%3Aabc&host=127.0.0.1&wss=443&invite=x&name=Test`);
        await page.waitForSelector('#join-form');
        await check('join');
        await signIn(page, 'alice');
        await check('list');
        await openChat(page, 'bob');
        await page.waitForSelector('#messages li');
        await check('conversation');
        if (locale === 'zh-CN') assert.equal(await page.textContent('#composer button[type="submit"]'), '发送');
        await toList(page);
        await page.click('#new-group');
        await check('group-create');
        await openChat(page, '#trio');
        await page.click('#group-info');
        await page.waitForSelector('#group-members-list li');
        await check('group');
        await ctx.close();
      }
    }
  });

  it('rides out a restart of the box: counts down to the next attempt, retries at once on request, loses nothing', async () => {
    const alice = pages.alice;
    const bob = pages.bob;
    await openChat(alice, 'bob');
    await openChat(bob, 'alice');
    const before = await texts(bob);
    await box.restart(async () => {
      await alice.waitForSelector('#offline', { state: 'visible' });
      await alice.waitForFunction(() => /Reconnecting in \d+ s/.test(document.getElementById('offline-text').textContent));
      await send(alice, 'while the box restarts');
      await alice.locator('#messages li[data-state="pending"]').waitFor();
    });
    await alice.click('#retry-now').catch(() => {}); // it may have reconnected by itself already
    await alice.waitForSelector('#offline', { state: 'hidden' });
    await waitForTexts(bob, [...before, 'while the box restarts'], 'the message once at bob after the restart');
    await waitForTexts(alice, [...before, 'while the box restarts'], 'the message stored at alice');
    // Web sessions (the admin's cookie) end with a restart, as docs/API.md says; device tokens do not.
    const login = await admin.post(`${box.https}/api/login`, { data: { username: OWNER, password: PASSWORD }, headers: { Origin: box.https } });
    assert.equal(login.status(), 200, await login.text());
  });

  it('logs out: the device is revoked on the box and forgotten by the browser', async () => {
    const alice = pages.alice;
    const devices = async () => (await (await admin.get(`${box.https}/api/admin/users/alice/devices`)).json()).devices.length;
    const before = await devices();
    await alice.click('#logout');
    await alice.waitForSelector('#signin-form');
    assert.match(await alice.textContent('#signin-notice'), /logged out/);
    assert.equal(await alice.evaluate(() => localStorage.getItem('imbox.device')), null);
    assert.equal(await alice.evaluate(() => localStorage.getItem('imbox.outbox.alice')), null);
    await eventually('one device fewer', async () => (await devices()) === before - 1);
  });
});
