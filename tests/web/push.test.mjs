// Web Push in the chat app, as far as a browser here can go. Headless
// Chromium's push service is Google's (FCM), which this machine cannot
// reach, so `pushManager.subscribe` cannot succeed and no real push can
// arrive: the box's side of it (encryption, VAPID, delivery) is tested with
// an independent decryptor in tests/tests/push.rs. What is tested here is the
// service worker's part, with the push delivered by DevTools
// (ServiceWorker.deliverPushMessage): the notification it shows carries no
// content, speaks the reader's language once the page told it, and names the
// conversation a click opens.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { eventually, launchBrowser, startBox } from './box.mjs';

describe('push notifications in the chat app', () => {
  let box;
  let browser;

  before(async () => {
    box = await startBox();
    browser = await launchBrowser({ trustEveryCertificate: true });
  });

  after(async () => {
    if (browser) await browser.close();
    if (box) await box.stop();
  });

  it('shows a content-free notification for a push, in the language of the reader', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'zh-CN' });
    await context.grantPermissions(['notifications'], { origin: box.https });
    const page = await context.newPage();
    await page.goto(`${box.https}/chat`);
    await page.evaluate(async () => {
      const { registerServiceWorker } = await import('/assets/chat/install.js');
      await registerServiceWorker();
    });
    await eventually('the worker to control the page', () => page.evaluate(() => Boolean(navigator.serviceWorker.controller)));

    const cdp = await context.newCDPSession(page);
    const registrations = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
    await cdp.send('ServiceWorker.enable');
    const registration = await eventually('the worker registration in DevTools',
      () => registrations.find((r) => r.scopeURL === `${box.https}/` && !r.isDeleted));
    const push = (data) => cdp.send('ServiceWorker.deliverPushMessage',
      { origin: box.https, registrationId: registration.registrationId, data });
    const notifications = () => page.evaluate(async () => {
      const ready = await navigator.serviceWorker.ready;
      return (await ready.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }));
    });

    // Before the page told it anything: English.
    await push(JSON.stringify({ conversation: 7 }));
    const first = await eventually('a notification', async () => (await notifications()).find((n) => n.tag === 'imbox-7'));
    assert.deepEqual(first, { title: 'New message', body: 'Open imbox to read it.', tag: 'imbox-7', data: { conversation: 7 } });

    // The page hands over its words, as chat/push.js does when push is turned on.
    await page.evaluate(async () => {
      await globalThis.imboxI18n.ready;
      const ready = await navigator.serviceWorker.ready;
      ready.active.postMessage({
        type: 'push-text', title: globalThis.imboxI18n.t('chat.push.title'), body: globalThis.imboxI18n.t('chat.push.body'),
      });
    });
    await eventually('the words kept', () => page.evaluate(async () => Boolean(await caches.match('/push-text.json'))));
    await push(JSON.stringify({ conversation: 9 }));
    const second = await eventually('a second notification', async () => (await notifications()).find((n) => n.tag === 'imbox-9'));
    assert.deepEqual(second, { title: '新消息', body: '打开 imbox 查看。', tag: 'imbox-9', data: { conversation: 9 } });

    // Something that is not the box's JSON still shows a notification (a
    // push must be shown), naming no conversation.
    await push('not json');
    const third = await eventually('a third notification', async () => (await notifications()).find((n) => n.tag === 'imbox'));
    assert.deepEqual(third.data, { conversation: null });
    await context.close();
  });
});
