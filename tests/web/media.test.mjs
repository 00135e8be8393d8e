// The chat app's attachments module (server/web/chat/attachments.js) in
// Debian's chromium against a real imboxd: a picture drawn in the page is
// described, uploaded through tus-js-client with progress, shown from its
// thumbnail and opened in full; a file downloads with its bytes and name; a
// voice note is recorded from Chromium's fake microphone; a file over the
// box's limit is refused with the translated reason. The module is imported
// into the /chat page, as the chat app imports it.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import { bin, eventually, run, startBox } from './box.mjs';

const USER = 'mei';
const PASSWORD = 'amber kettle orchard 62';
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** A device token for `user`, by a protocol login of the CLI (as in attachments.test.mjs). */
export async function deviceToken(box, user, password, scratch) {
  const config = ['--config', path.join(box.dir, 'empty.toml'), '--data-dir', box.data];
  const added = await run(bin('imboxd'), [...config, 'user', 'add', user], {}, `${password}\n`);
  assert.equal(added.code, 0, `imboxd user add failed: ${added.stderr}`);
  const identity = await run(bin('imboxd'), [...config, 'identity']);
  assert.equal(identity.code, 0, `imboxd identity failed: ${identity.stderr}`);
  const profile = path.join(scratch, user);
  const login = await run(bin('imbox'), ['--server', `${box.https.replace('https:', 'wss:')}/ws`,
    '--pin', identity.stdout.trim(), '--profile', profile, 'login', user], { IMBOX_PASSWORD: password });
  assert.equal(login.code, 0, `imbox login failed: ${login.stderr}`);
  const { token } = JSON.parse(fs.readFileSync(path.join(profile, 'profile.json'), 'utf8'));
  assert.ok(token, 'the profile holds no token');
  return token;
}

/** Chromium as box.mjs starts it, with a fake microphone that needs no permission prompt. */
function launchWithMicrophone() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
  });
}

/** Bytes of a base64 data: URL's image. */
const dataUrlBytes = (url) => Buffer.from(url.slice(url.indexOf(',') + 1), 'base64');

describe('attachments in the chat app (attachments.js)', () => {
  let box;
  let browser;
  let page;
  let token;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'imbox-media-'));

  before(async () => {
    box = await startBox();
    token = await deviceToken(box, USER, PASSWORD, scratch);
    browser = await launchWithMicrophone();
    const context = await browser.newContext({
      ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 360, height: 740 },
    });
    page = await context.newPage();
    await page.goto(`${box.https}/chat`);
    await page.evaluate(async (deviceToken) => {
      await globalThis.imboxI18n.ready;
      const media = await import('/assets/chat/attachments.js');
      const ctx = { token: deviceToken, t: globalThis.imboxI18n.t };
      const controls = media.createAttachControls(ctx);
      const changes = [];
      controls.element.addEventListener('attachmentschange', (event) => changes.push(event.detail));
      const composer = document.createElement('section');
      composer.id = 'composer';
      composer.append(controls.element);
      const shown = document.createElement('section');
      shown.id = 'shown';
      document.body.append(composer, shown);
      globalThis.mediaTest = { media, ctx, controls, changes };
    }, token);
  });

  after(async () => {
    if (browser) await browser.close();
    if (box) await box.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('uploads a picture with progress, describes it and shows it from its thumbnail, then in full', async () => {
    // A 1600 × 1000 picture of noise: incompressible, so its PNG takes more
    // than one 4 MiB chunk and the upload reports progress on the way.
    const picture = await page.evaluate(async () => {
      const canvas = document.createElement('canvas');
      canvas.width = 1600;
      canvas.height = 1000;
      const context = canvas.getContext('2d');
      const pixels = context.createImageData(canvas.width, canvas.height);
      crypto.getRandomValues(pixels.data.subarray(0, 65536)); // getRandomValues takes 64 KiB at most
      for (let i = 65536; i < pixels.data.length; i += 65536) {
        crypto.getRandomValues(pixels.data.subarray(i, Math.min(i + 65536, pixels.data.length)));
      }
      for (let i = 3; i < pixels.data.length; i += 4) pixels.data[i] = 255;
      context.putImageData(pixels, 0, 0);
      const blob = await new Promise((resolve) => { canvas.toBlob(resolve, 'image/png'); });
      const file = new File([blob], 'sunset.png', { type: 'image/png' });
      const { controls } = globalThis.mediaTest;
      const item = () => document.querySelector('#composer .media-chosen-item');
      // Every value the progress bar takes, as the upload reports it.
      const seen = [];
      const watch = new MutationObserver(() => {
        const bar = item().querySelector('progress');
        if (bar.hasAttribute('value')) seen.push([bar.value, bar.max]);
      });
      controls.add([file]);
      watch.observe(item().querySelector('progress'), { attributes: true, attributeFilter: ['value', 'max'] });
      globalThis.mediaTest.progress = seen;
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let binary = '';
      for (let i = 0; i < bytes.length; i += 32768) binary += String.fromCharCode(...bytes.subarray(i, i + 32768));
      return {
        base64: btoa(binary),
        label: item().querySelector('progress').getAttribute('aria-label'),
        preview: item().querySelector('img.media-chosen-preview').src,
      };
    });
    const bytes = Buffer.from(picture.base64, 'base64');
    assert.ok(bytes.length > 4 * 1024 * 1024, `the PNG has only ${bytes.length} bytes`);
    assert.equal(picture.label, 'Upload of sunset.png');
    assert.match(picture.preview, /^blob:/, 'the chosen picture is previewed from the file itself');

    const attachments = await page.evaluate(() => globalThis.mediaTest.controls.take());
    assert.equal(attachments.length, 1);
    const [photo] = attachments;
    assert.equal(photo.id, sha256(bytes), 'the attachment id is not the SHA-256 of the picture');
    assert.equal(photo.size, bytes.length);
    assert.equal(photo.media_type, 'image/png');
    assert.equal(photo.name, 'sunset.png');
    assert.equal(photo.width, 1600);
    assert.equal(photo.height, 1000);
    assert.match(photo.thumbnail, /^data:image\/(webp|jpeg);base64,/);
    const thumbnail = dataUrlBytes(photo.thumbnail);
    assert.ok(thumbnail.length > 0 && thumbnail.length <= 1024, `the thumbnail has ${thumbnail.length} bytes`);

    const { progress, state, changes } = await page.evaluate(() => ({
      progress: globalThis.mediaTest.progress,
      state: document.querySelector('#composer .media-chosen-state').textContent,
      changes: globalThis.mediaTest.changes,
    }));
    assert.ok(progress.length >= 2, `the progress bar moved ${progress.length} times: ${JSON.stringify(progress)}`);
    assert.ok(progress.some(([value, max]) => value > 0 && value < max && max === bytes.length),
      `no progress part of the way: ${JSON.stringify(progress)}`);
    assert.deepEqual(progress.at(-1), [1, 1], 'the bar ends full');
    assert.equal(state, 'Uploaded, ready to send');
    assert.deepEqual(changes.at(-1), { count: 1, uploading: 0 });

    // Shown in a message: the thumbnail at once, in a box of the picture's
    // proportions (240 × 150 for 1600 × 1000), before anything is downloaded.
    const shown = await page.evaluate((attachment) => {
      const { media, ctx } = globalThis.mediaTest;
      const list = media.renderAttachments([attachment], ctx);
      document.getElementById('shown').replaceChildren(list);
      const button = list.querySelector('button.media-picture');
      const { width, height } = button.getBoundingClientRect();
      return {
        src: list.querySelector('img.media-thumbnail').src, width, height, label: button.getAttribute('aria-label'),
      };
    }, photo);
    assert.equal(shown.src, photo.thumbnail);
    assert.ok(Math.abs(shown.width - 240) <= 1 && Math.abs(shown.height - 150) <= 1,
      `the preview is ${shown.width} × ${shown.height}, not 240 × 150`);
    assert.equal(shown.label, 'Open picture sunset.png');

    // Full view: a modal dialog with the downloaded picture; Escape closes
    // it and focus goes back to the preview.
    await page.focus('#shown button.media-picture');
    await page.keyboard.press('Enter');
    const full = await eventually('the full picture to load', () => page.evaluate(() => {
      const img = document.querySelector('dialog.media-viewer[open] img.media-full');
      return img && img.complete && img.naturalWidth > 0
        ? { width: img.naturalWidth, height: img.naturalHeight, src: img.src, modal: document.querySelector('dialog.media-viewer').matches(':modal') }
        : null;
    }));
    assert.deepEqual({ width: full.width, height: full.height, modal: full.modal }, { width: 1600, height: 1000, modal: true });
    assert.match(full.src, /^blob:/, 'the full picture is not shown from a blob (a token would be in a URL otherwise)');
    await page.keyboard.press('Escape');
    await eventually('the dialog to close', () => page.evaluate(() => !document.querySelector('dialog.media-viewer')));
    assert.equal(await page.evaluate(() => document.activeElement.className), 'media-picture');
    // The object URL of the full picture is revoked with the dialog.
    const revoked = await page.evaluate((src) => fetch(src).then(() => false, () => true), full.src);
    assert.ok(revoked, 'the full picture\'s object URL outlived its dialog');

    await page.evaluate(() => globalThis.mediaTest.controls.clear());
    assert.equal(await page.locator('#composer .media-chosen-item').count(), 0);
  });

  it('downloads a file with its bytes and its name', async () => {
    const bytes = randomBytes(300 * 1024 + 17);
    const attachments = await page.evaluate(async (base64) => {
      const raw = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const { controls } = globalThis.mediaTest;
      controls.add([new File([raw], 'Quarterly report (final).pdf', { type: 'application/pdf' })]);
      return controls.take();
    }, bytes.toString('base64'));
    const [file] = attachments;
    assert.deepEqual(
      { id: file.id, size: file.size, name: file.name, media_type: file.media_type },
      { id: sha256(bytes), size: bytes.length, name: 'Quarterly report (final).pdf', media_type: 'application/pdf' },
    );
    assert.equal(file.width, undefined);
    assert.equal(file.thumbnail, undefined);
    await page.evaluate(() => globalThis.mediaTest.controls.clear());

    const text = await page.evaluate((attachment) => {
      const { media, ctx } = globalThis.mediaTest;
      const list = media.renderAttachments([attachment], ctx);
      document.getElementById('shown').replaceChildren(list);
      return list.textContent;
    }, file);
    assert.ok(text.includes('Quarterly report (final).pdf') && text.includes('300 kB'), text);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('#shown .media-file button'),
    ]);
    assert.equal(download.suggestedFilename(), 'Quarterly report (final).pdf');
    const saved = fs.readFileSync(await download.path());
    assert.equal(sha256(saved), sha256(bytes), 'the download is not the file');
  });

  it('records a voice note from the microphone, with its duration, and plays it back', async () => {
    await page.click('#composer .media-record');
    await eventually('a second of recording', () => page.evaluate(() => {
      const timer = document.querySelector('#composer .media-timer');
      return timer && !timer.closest('[hidden]') && timer.textContent === '0:01';
    }));
    assert.equal(await page.evaluate(() => document.activeElement.classList.contains('media-stop')), true,
      'focus is not on the stop button while recording');
    await page.click('#composer .media-stop');
    const [voice] = await page.evaluate(() => globalThis.mediaTest.controls.take());
    assert.match(voice.media_type, /^audio\/webm/);
    assert.match(voice.name, /^Voice note .+\.webm$/);
    assert.ok(voice.duration_ms >= 1000 && voice.duration_ms < 60000, `duration ${voice.duration_ms} ms`);
    assert.ok(voice.size > 1000, `a recording of ${voice.size} bytes`);
    // What the box stores is what was recorded: its SHA-256 is the id.
    const stored = await page.evaluate(async ({ id, deviceToken }) => {
      const response = await fetch(`/api/attachments/${id}`, { headers: { Authorization: `Bearer ${deviceToken}` } });
      const digest = await crypto.subtle.digest('SHA-256', await response.arrayBuffer());
      return { type: response.headers.get('content-type'), hash: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('') };
    }, { id: voice.id, deviceToken: token });
    assert.equal(stored.hash, voice.id);
    assert.match(stored.type, /^audio\/webm/);
    await page.evaluate(() => globalThis.mediaTest.controls.clear());

    await page.evaluate((attachment) => {
      const { media, ctx } = globalThis.mediaTest;
      document.getElementById('shown').replaceChildren(media.renderAttachments([attachment], ctx));
    }, voice);
    const seconds = Math.round(voice.duration_ms / 1000);
    assert.equal(await page.getAttribute('#shown .media-play', 'aria-label'),
      `Play voice note, 0:${String(seconds).padStart(2, '0')}`);
    await page.click('#shown .media-play');
    const played = await eventually('the voice note to load', () => page.evaluate(() => {
      const audio = document.querySelector('#shown audio.media-element');
      return audio && audio.readyState >= 1 ? { src: audio.src, controls: audio.controls } : null;
    }));
    assert.match(played.src, /^blob:/);
    assert.equal(played.controls, true);
  });

  it('says why the box refused a file over its size limit, and take() fails with that reason', async () => {
    // The box's default limit is 100 MiB (media.max_file_mib): refused before any byte.
    const outcome = await page.evaluate(async () => {
      const { controls } = globalThis.mediaTest;
      controls.add([new File([new Uint8Array(101 * 1024 * 1024)], 'huge.bin', { type: 'application/octet-stream' })]);
      const error = await controls.take().then(() => null, (e) => ({ code: e.code, message: e.message }));
      return {
        error,
        count: document.querySelectorAll('#composer .media-chosen-item').length,
        state: document.querySelector('#composer .media-chosen-state').textContent,
        retry: !document.querySelector('#composer .media-retry').hidden,
      };
    });
    assert.equal(outcome.count, 1);
    assert.equal(outcome.error.code, 'too_large');
    assert.equal(outcome.error.message,
      'huge.bin was not uploaded: The file is larger than the box accepts: send a smaller one.');
    assert.equal(outcome.state, 'The file is larger than the box accepts: send a smaller one.');
    assert.equal(outcome.retry, true);
    await page.click('#composer .media-remove');
    assert.equal(await page.locator('#composer .media-chosen-item').count(), 0);
    assert.deepEqual(await page.evaluate(() => globalThis.mediaTest.controls.take()), []);
  });
});
