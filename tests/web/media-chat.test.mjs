// Attachments through the chat app, end to end (issue 15: "a photo upload
// with progress, its preview and full view on the other side; a file
// download whose bytes match"): two people in two browser contexts on a
// real imboxd; the sender picks files or records a voice note in the
// composer, the receiver sees the sender's preview at once and opens,
// plays or downloads the content.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { PNG } from 'pngjs';

import { claimCode, eventually, fitsAndShoot, startBox } from './box.mjs';
import { openChat, signIn as signInAs } from './chat-page.mjs';
import { launchWithMicrophone } from './media-browser.mjs';

const OWNER = 'olivia';
const PASSWORD = 'violet tractor lantern 93';
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** A PNG of noise, `width` × `height`: large enough to take several progress steps. */
function noisePng(width, height) {
  const image = new PNG({ width, height });
  randomBytes(image.data.length).copy(image.data);
  for (let i = 3; i < image.data.length; i += 4) image.data[i] = 255;
  return PNG.sync.write(image);
}

describe('attachments in the chat app, between two people', () => {
  let box;
  let browser;
  const pages = {};
  const contexts = [];

  async function signIn(user) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 360, height: 740 }, locale: 'en-US' });
    contexts.push(context);
    const page = await context.newPage();
    await signInAs(page, box.https, user, PASSWORD);
    return page;
  }

  before(async () => {
    box = await startBox();
    browser = await launchWithMicrophone();
    const setup = await browser.newContext({ ignoreHTTPSErrors: true });
    contexts.push(setup);
    const claim = await setup.request.post(`${box.https}/api/setup/claim`, {
      data: { code: claimCode(box.claimFile), username: OWNER, password: PASSWORD, password_confirm: PASSWORD },
      headers: { Origin: box.https },
    });
    assert.equal(claim.status(), 201, await claim.text());
    const csrf = (await claim.json()).csrf_token;
    for (const username of ['alice', 'bob']) {
      const made = await setup.request.post(`${box.https}/api/admin/users`, {
        data: { username, password: PASSWORD }, headers: { 'X-CSRF-Token': csrf, Origin: box.https },
      });
      assert.equal(made.status(), 201, await made.text());
    }
    pages.alice = await signIn('alice');
    pages.bob = await signIn('bob');
    await openChat(pages.alice, 'bob');
  });

  after(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    if (browser) await browser.close();
    if (box) await box.stop();
  });

  it('sends a photo with upload progress; the other side sees its preview at once and opens it in full', async () => {
    const { alice, bob } = pages;
    const photo = noisePng(1600, 1000);
    assert.ok(photo.length > 4 * 1024 * 1024, 'the photo takes more than one 4 MiB chunk');
    // Every value the upload's progress bar takes.
    await alice.evaluate(() => {
      globalThis.progressSeen = [];
      const watch = new MutationObserver(() => {
        for (const bar of document.querySelectorAll('#composer progress.media-progress')) {
          if (bar.hasAttribute('value')) globalThis.progressSeen.push([bar.value, bar.max]);
        }
      });
      watch.observe(document.getElementById('composer'), { attributes: true, subtree: true, attributeFilter: ['value', 'max'] });
    });
    await alice.setInputFiles('#composer input.media-input', { name: 'harbour.png', mimeType: 'image/png', buffer: photo });
    await eventually('the upload to finish', () => alice.evaluate(() => document.querySelector('#composer .media-chosen-state')?.textContent === 'Uploaded, ready to send'), 60000);
    const progress = await alice.evaluate(() => globalThis.progressSeen);
    assert.ok(progress.some(([value, max]) => value > 0 && value < max && max === photo.length),
      `no progress part of the way: ${JSON.stringify(progress)}`);
    await alice.fill('#composer-text', 'the harbour this morning');
    await alice.click('#send');

    // Bob: the message with its preview, drawn from the thumbnail in the
    // message (a data: URL), before anything is downloaded.
    const downloads = [];
    bob.on('request', (request) => { if (request.url().includes('/api/attachments/')) downloads.push(request.url()); });
    await openChat(bob, 'alice');
    const preview = await eventually('the photo message on the other side', () => bob.evaluate(() => {
      const message = [...document.querySelectorAll('#messages li.message')].find((m) => m.querySelector('.text')?.textContent === 'the harbour this morning');
      const img = message && message.querySelector('button.media-picture img.media-thumbnail');
      if (!img || !img.complete || img.naturalWidth === 0) return null;
      const box = img.closest('button').getBoundingClientRect();
      return { src: img.src, width: box.width, height: box.height, label: img.closest('button').getAttribute('aria-label') };
    }));
    assert.match(preview.src, /^data:image\/(webp|jpeg);base64,/);
    assert.ok(Buffer.from(preview.src.split(',')[1], 'base64').length <= 1024, 'the thumbnail is over 1 KiB');
    assert.ok(Math.abs(preview.width - 240) <= 1 && Math.abs(preview.height - 150) <= 1, `preview ${preview.width} × ${preview.height}`);
    assert.equal(preview.label, 'Open picture harbour.png');
    assert.deepEqual(downloads, [], 'the preview downloaded the photo');
    const { scrollWidth } = await fitsAndShoot(bob, 'media-chat-photo-360');
    assert.ok(scrollWidth <= 360, `the conversation scrolls sideways: ${scrollWidth}`);

    await bob.click('#messages button.media-picture');
    const full = await eventually('the full photo', () => bob.evaluate(() => {
      const img = document.querySelector('dialog.media-viewer[open] img.media-full');
      return img && img.complete && img.naturalWidth > 0 ? { width: img.naturalWidth, height: img.naturalHeight } : null;
    }));
    assert.deepEqual(full, { width: 1600, height: 1000 });
    assert.equal(downloads.length, 1);
    assert.ok(downloads[0].endsWith(`/api/attachments/${sha256(photo)}`), downloads[0]);
    await fitsAndShoot(bob, 'media-chat-full-360');
    await bob.keyboard.press('Escape');
    await eventually('the full view to close', () => bob.evaluate(() => !document.querySelector('dialog.media-viewer')));
    assert.equal(await bob.evaluate(() => document.activeElement.classList.contains('media-picture')), true);
  });

  it('sends a file without text; the other side downloads the same bytes under its name', async () => {
    const { alice, bob } = pages;
    const bytes = randomBytes(2 * 1024 * 1024 + 99);
    await alice.setInputFiles('#composer input.media-input', { name: 'minutes 2026-12.pdf', mimeType: 'application/pdf', buffer: bytes });
    await eventually('the upload to finish', () => alice.evaluate(() => document.querySelector('#composer .media-chosen-state')?.textContent === 'Uploaded, ready to send'), 60000);
    await alice.click('#send');
    await eventually('the composer to empty', () => alice.evaluate(() => !document.querySelector('#composer .media-chosen-item')));

    const button = bob.locator('#messages li.message .media-file button', { hasText: 'Download' });
    await eventually('the file on the other side', async () => (await button.count()) === 1);
    assert.equal(await button.getAttribute('aria-label'), 'Download minutes 2026-12.pdf (2 MB)');
    const [download] = await Promise.all([bob.waitForEvent('download'), button.click()]);
    assert.equal(download.suggestedFilename(), 'minutes 2026-12.pdf');
    assert.equal(sha256(fs.readFileSync(await download.path())), sha256(bytes), 'the downloaded bytes are not the file');
  });

  it('sends a voice note; the other side sees its length and plays it', async () => {
    const { alice, bob } = pages;
    await alice.click('#composer .media-record');
    await eventually('a second of recording', () => alice.evaluate(() => document.querySelector('#composer .media-timer')?.textContent === '0:01'));
    await alice.click('#composer .media-stop');
    await eventually('the voice note to upload', () => alice.evaluate(() => document.querySelector('#composer .media-chosen-state')?.textContent === 'Uploaded, ready to send'), 60000);
    await alice.click('#send');

    const play = bob.locator('#messages li.message .media-audio button.media-play');
    await eventually('the voice note on the other side', async () => (await play.count()) === 1);
    assert.match(await play.getAttribute('aria-label'), /^Play voice note, 0:0[1-9]$/);
    await play.click();
    const audio = await eventually('the voice note to load', () => bob.evaluate(() => {
      const element = document.querySelector('#messages audio.media-element');
      return element && element.readyState >= 1 ? { src: element.src, duration: element.duration } : null;
    }));
    assert.match(audio.src, /^blob:/);
  });
});
