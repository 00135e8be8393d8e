// The chat app as an installable web app: the manifest as Chromium parses it
// and its icons (real PNGs and an SVG of the sizes it says), and the service
// worker (server/web/sw.js, registered by server/web/chat/install.js) that
// starts the app shell without the network once it has been loaded online.
// Chromium registers a worker only for a certificate it trusts: one browser
// here is told to trust every certificate (--ignore-certificate-errors),
// the other only skips the warning, as a person who clicked through does.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { PNG } from 'pngjs';

import { eventually, launchBrowser, phone, startBox } from './box.mjs';

describe('the installable chat app', () => {
  let box;
  let trusting;
  let untrusting;

  before(async () => {
    box = await startBox();
    [trusting, untrusting] = await Promise.all([launchBrowser({ trustEveryCertificate: true }), launchBrowser()]);
  });

  after(async () => {
    if (trusting) await trusting.close();
    if (untrusting) await untrusting.close();
    if (box) await box.stop();
  });

  it('has a manifest Chromium reads without error, with icons of the sizes it names', async () => {
    const context = await phone(trusting);
    const page = await context.newPage();
    await page.goto(`${box.https}/chat`);
    assert.equal(await page.getAttribute('link[rel="manifest"]', 'href'), '/manifest.webmanifest');
    const cdp = await context.newCDPSession(page);
    const reported = await cdp.send('Page.getAppManifest');
    assert.equal(reported.url, `${box.https}/manifest.webmanifest`);
    assert.deepEqual(reported.errors, [], `Chromium's manifest errors: ${JSON.stringify(reported.errors)}`);

    const response = await page.request.get(`${box.https}/manifest.webmanifest`);
    assert.equal(response.headers()['content-type'], 'application/manifest+json');
    const manifest = await response.json();
    assert.equal(manifest.name, 'imbox');
    assert.ok(manifest.short_name);
    assert.equal(manifest.start_url, '/chat');
    assert.equal(manifest.scope, '/');
    assert.equal(manifest.display, 'standalone');
    assert.match(manifest.theme_color, /^#[0-9a-f]{6}$/i);
    assert.match(manifest.background_color, /^#[0-9a-f]{6}$/i);

    const seen = new Set();
    for (const icon of manifest.icons) {
      const got = await page.request.get(new URL(icon.src, box.https).href);
      assert.equal(got.status(), 200, `${icon.src} answered ${got.status()}`);
      assert.equal(got.headers()['content-type'], icon.type, `${icon.src} is served as ${got.headers()['content-type']}`);
      const body = await got.body();
      if (icon.type === 'image/png') {
        const png = PNG.sync.read(body);
        assert.equal(`${png.width}x${png.height}`, icon.sizes, `${icon.src} is ${png.width}x${png.height}`);
        // A maskable icon fills its square to the corners (it is cut by the system).
        if (icon.purpose === 'maskable') assert.equal(png.data[3], 255, `${icon.src} has a transparent corner`);
        seen.add(`${icon.purpose}:${icon.sizes}`);
      } else {
        assert.equal(icon.type, 'image/svg+xml');
        assert.match(body.toString('utf8'), /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" viewBox="0 0 512 512"/);
        seen.add('svg');
      }
    }
    for (const wanted of ['svg', 'any:192x192', 'any:512x512', 'maskable:512x512']) {
      assert.ok(seen.has(wanted), `no ${wanted} icon in the manifest`);
    }
    await context.close();
  });

  it('starts the app shell offline once it was loaded online, and keeps nothing of the API', async () => {
    const context = await phone(trusting);
    const page = await context.newPage();
    await page.goto(`${box.https}/chat`);
    const registered = await page.evaluate(async () => {
      const { registerServiceWorker } = await import('/assets/chat/install.js');
      const registration = await registerServiceWorker();
      return registration ? registration.scope : null;
    });
    assert.equal(registered, `${box.https}/`);
    await eventually('the worker to control the page and keep the shell', () => page.evaluate(async () => {
      if (!navigator.serviceWorker.controller) return false;
      const wanted = ['/chat', '/assets/i18n.js', '/assets/chat/install.js', '/assets/locales/en.json'];
      const kept = await Promise.all(wanted.map((url) => caches.match(url)));
      return kept.every(Boolean);
    }));
    // An API answer and a download go past the worker and are not kept.
    await page.evaluate(() => Promise.all([
      fetch('/api/me').catch(() => null),
      fetch(`/api/attachments/${'0'.repeat(64)}`, { headers: { Authorization: 'Bearer nope' } }).catch(() => null),
    ]));

    await context.setOffline(true);
    await page.reload();
    const offline = await page.evaluate(async () => {
      await globalThis.imboxI18n.ready;
      return {
        page: document.body.dataset.page,
        lang: document.documentElement.lang,
        text: globalThis.imboxI18n.t('media.loading'),
        online: navigator.onLine,
      };
    });
    assert.deepEqual(offline, { page: 'chat', lang: 'en', text: 'Loading…', online: false },
      'the shell did not start offline from what the worker kept');
    // The chat app itself ran from what was kept: its sign-in form is there.
    await page.waitForSelector('#signin-username');
    const keys = await page.evaluate(async () => {
      const names = await caches.keys();
      const all = [];
      for (const name of names) {
        const cache = await caches.open(name);
        all.push(...(await cache.keys()).map((request) => new URL(request.url).pathname));
      }
      return all;
    });
    assert.ok(keys.length > 0);
    for (const key of keys) {
      assert.ok(key === '/chat' || key === '/join' || key === '/manifest.webmanifest' || key.startsWith('/assets/'),
        `the worker kept ${key}, which is not part of the shell`);
    }

    // Back online, the box's files win over what was kept (network first):
    // an old copy planted in the cache is neither run nor kept.
    await page.evaluate(async () => {
      const cache = await caches.open((await caches.keys())[0]);
      await cache.put('/assets/i18n.js', new Response('globalThis.staleShell = true;', {
        headers: { 'Content-Type': 'text/javascript' },
      }));
    });
    await context.setOffline(false);
    await page.reload();
    const online = await page.evaluate(() => ({ stale: Boolean(globalThis.staleShell), i18n: Boolean(globalThis.imboxI18n) }));
    assert.deepEqual(online, { stale: false, i18n: true }, 'the kept copy was used while the box answered');
    await eventually('the kept copy to be refreshed from the box', () => page.evaluate(async () => {
      const cache = await caches.open((await caches.keys())[0]);
      return (await (await cache.match('/assets/i18n.js')).text()).includes('imboxI18n');
    }));
    await context.close();
  });

  it('does nothing and fails nothing where the certificate is not trusted', async () => {
    const context = await phone(untrusting);
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (error) => errors.push(error));
    await page.goto(`${box.https}/chat`);
    const result = await page.evaluate(async () => {
      const { registerServiceWorker } = await import('/assets/chat/install.js');
      return { registered: await registerServiceWorker(), controller: Boolean(navigator.serviceWorker.controller) };
    });
    assert.deepEqual(result, { registered: null, controller: false });
    assert.deepEqual(errors.filter((e) => /service ?worker/i.test(String(e))), []);
    await context.close();
  });
});
