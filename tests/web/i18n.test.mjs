// Every page the box serves outside the chat app, in Simplified Chinese and
// English, on a 360 px phone and a desktop: no English left in Chinese, no
// overflow at 360 px, no serious or critical axe-core violations, and a
// screenshot of each (out/screens/PAGE-LANG-WIDTH.png). Then the language
// switch: it changes the language and the choice outlives a reload.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  bin, claimCode, cleanEnv, eventually, freeTcpPort, launchBrowser, startBox,
} from './box.mjs';
import { axeViolations, englishLeft, overflowing, shoot } from './i18n-check.mjs';

const OWNER = 'olivia';
const OWNER_PASSWORD = 'violet tractor lantern 93';
const MEMBER = 'bob';
const MEMBER_PASSWORD = 'quiet otter harbour 57';
const BOX_NAME = 'Test box';

// Names that stay as they are in every language: the box's and the users'.
const NAMES = [BOX_NAME, OWNER, MEMBER];

const LOOKS = [
  { lang: 'zh-CN', width: 360, height: 740 },
  { lang: 'zh-CN', width: 1280, height: 800 },
  { lang: 'en-US', width: 360, height: 740 },
  { lang: 'en-US', width: 1280, height: 800 },
];

describe('every page in Chinese and English, at 360 px and on a desktop', () => {
  let box;
  let browser;
  const contexts = new Map(); // look → browser context
  const checked = new Set();

  function context(look) {
    return contexts.get(look);
  }

  async function newContext(look) {
    return browser.newContext({
      ignoreHTTPSErrors: true,
      locale: look.lang,
      viewport: { width: look.width, height: look.height },
      deviceScaleFactor: 1,
    });
  }

  // The page is shown once its catalog is applied and, for pages that load
  // data, once `ready` says the data is in.
  async function settle(page, look, ready, arg) {
    await page.waitForFunction(() => globalThis.imboxI18n !== undefined);
    await page.evaluate(() => globalThis.imboxI18n.ready);
    assert.equal(await page.evaluate(() => document.documentElement.lang), look.lang === 'zh-CN' ? 'zh-CN' : 'en',
      'the page is in the browser\'s language');
    if (ready) await page.waitForFunction(ready, arg);
  }

  // The checks every page passes in every look.
  async function check(page, look, name) {
    const shotName = `${name}-${look.lang}-${look.width}`;
    await shoot(page, shotName);
    if (look.lang === 'zh-CN') {
      const left = await englishLeft(page, { allow: NAMES });
      assert.deepEqual(left, [], `${shotName}: English left in Chinese`);
    }
    if (look.width <= 360) {
      const over = await overflowing(page);
      assert.deepEqual(over, [], `${shotName}: overflows at ${look.width} px`);
    }
    const violations = await axeViolations(page);
    assert.deepEqual(violations, [], `${shotName}: serious or critical accessibility violations`);
    checked.add(name);
  }

  async function visit(page, look, name, url, ready, arg) {
    await page.goto(url);
    await settle(page, look, ready, arg);
    await check(page, look, name);
  }

  async function logIn(page, look, user, password) {
    await visit(page, look, 'login', `${box.https}/login`);
    await page.fill('#username', user);
    await page.fill('#password', password);
    await page.click('#login-form button[type="submit"]');
    await page.waitForURL((url) => url.pathname !== '/login');
  }

  before(async () => {
    box = await startBox();
    browser = await launchBrowser();
    for (const look of LOOKS) contexts.set(look, await newContext(look));
  });

  after(async () => {
    if (browser) await browser.close();
    if (box) await box.stop();
  });

  it('shows the landing page and the setup page of a new box', async () => {
    for (const look of LOOKS) {
      const page = await context(look).newPage();
      await visit(page, look, 'landing', `${box.http}/`);
      assert.ok(await page.isVisible('#claim-code-where'), 'a new box says where the claim code is');
      await visit(page, look, 'setup', `${box.https}/setup`);
      await page.close();
    }
  });

  it('claims the box in Chinese: errors, password strength, naming and storage in Chinese', async () => {
    const look = LOOKS[0];
    const page = await context(look).newPage();
    await visit(page, look, 'setup', `${box.https}/setup`);
    assert.equal(await page.textContent('h1'), '设置这台盒子');
    await page.fill('#code', 'AAAA-BBBB-CCCC-DDDD');
    await page.click('#code-form button[type="submit"]');
    await page.waitForFunction(() => document.getElementById('code-error').textContent.length > 0);
    assert.match(await page.textContent('#code-error'), /不是这台盒子的认领码/, 'the box\'s error, said in Chinese');
    await check(page, look, 'setup-code-error');
    await page.fill('#code', claimCode(box.claimFile));
    await page.press('#code', 'Enter');
    await page.waitForSelector('#step-owner', { state: 'visible' });
    await page.fill('#username', OWNER);
    await page.fill('#password', 'password1');
    await page.waitForFunction(() => /还不够/.test(document.getElementById('password-strength').textContent));
    assert.ok((await page.$$('#password-strength li')).length > 0, 'advice is shown');
    await check(page, look, 'setup-owner');
    await page.fill('#password', OWNER_PASSWORD);
    await page.fill('#password2', OWNER_PASSWORD);
    await page.waitForFunction(() => /足够了/.test(document.getElementById('password-strength').textContent));
    await page.click('#owner-form button[type="submit"]');
    await page.waitForURL('**/admin/welcome');
    await settle(page, look, () => document.getElementById('box-name').value.length > 0);
    await check(page, look, 'welcome');
    await page.fill('#box-name', BOX_NAME);
    await page.click('#name-form button[type="submit"]');
    await page.waitForSelector('#step-storage', { state: 'visible' });
    await page.waitForFunction(() => document.getElementById('storage-dir').textContent !== '…');
    await check(page, look, 'welcome-storage');
    await page.close();
  });

  it('shows every admin page, a 404 and the claimed setup page in every look', async () => {
    for (const look of LOOKS) {
      const page = await context(look).newPage();
      await logIn(page, look, OWNER, OWNER_PASSWORD);
      await settle(page, look, () => document.getElementById('st-version').textContent !== '…');
      await check(page, look, 'status');
      await visit(page, look, 'storage', `${box.https}/admin/storage`,
        () => document.getElementById('storage-dir').textContent !== '…');
      if (look === LOOKS[0]) {
        // A member to list, made through the page itself.
        await page.goto(`${box.https}/admin/users`);
        await settle(page, look, () => document.querySelector('#users tbody tr'));
        await page.fill('#new-username', MEMBER);
        await page.fill('#new-password', MEMBER_PASSWORD);
        await page.fill('#new-password2', MEMBER_PASSWORD);
        await page.click('#create-form button[type="submit"]');
        await page.waitForFunction(() => /已创建/.test(document.getElementById('users-notice').textContent));
      }
      await visit(page, look, 'users', `${box.https}/admin/users`,
        (member) => document.querySelector(`#users tr[data-user="${member}"]`), MEMBER);
      await page.click(`#users tr[data-user="${OWNER}"] td:last-child button >> nth=0`);
      await page.waitForSelector('#devices', { state: 'visible' });
      await page.waitForSelector('#device-list li');
      await check(page, look, 'users-devices');

      await visit(page, look, 'invites', `${box.https}/admin/invites`,
        () => !document.getElementById('no-invites').hidden || document.querySelector('#invites tbody tr'));
      await page.click('#invite-form button[type="submit"]');
      await page.waitForSelector('#new-invite', { state: 'visible' });
      await page.waitForFunction(() => {
        const img = document.getElementById('invite-qr');
        return img.complete && img.naturalWidth > 0 && document.querySelector('#invites tbody tr');
      });
      await check(page, look, 'invites');

      await visit(page, look, 'settings', `${box.https}/admin/settings`,
        () => document.getElementById('settings-name').value.length > 0);
      const missing = await page.goto(`${box.https}/no-such-page`);
      assert.equal(missing.status(), 404);
      await settle(page, look);
      await check(page, look, 'not-found');
      const gone = await page.goto(`${box.https}/setup`);
      assert.equal(gone.status(), 410);
      await settle(page, look);
      await check(page, look, 'setup-claimed');
      await visit(page, look, 'landing-claimed', `${box.http}/`);

      // The member: their page, and the admin pages are closed to them.
      await page.goto(`${box.https}/admin/settings`);
      await settle(page, look);
      await page.click('#logout');
      await page.waitForURL('**/login');
      await logIn(page, look, MEMBER, MEMBER_PASSWORD);
      await settle(page, look, (member) => document.getElementById('member-name').textContent === member, MEMBER);
      await check(page, look, 'member');
      const forbidden = await page.goto(`${box.https}/admin/users`);
      assert.equal(forbidden.status(), 403);
      await settle(page, look);
      await check(page, look, 'forbidden');
      await page.close();
    }
    for (const name of ['landing', 'setup', 'login', 'welcome', 'status', 'storage', 'users', 'invites', 'settings',
      'not-found', 'setup-claimed', 'member', 'forbidden']) {
      assert.ok(checked.has(name), `${name} was checked`);
    }
  });

  it('switches language with the switch and remembers it after a reload', async () => {
    // An English browser chooses 中文.
    const english = await newContext(LOOKS[3]);
    const page = await english.newPage();
    await page.goto(`${box.https}/login`);
    await settle(page, LOOKS[3]);
    assert.equal(await page.textContent('h1'), 'Log in');
    assert.equal(await page.getAttribute('select[data-language-switch]', 'aria-label'), 'Language');
    await Promise.all([page.waitForNavigation(), page.selectOption('select[data-language-switch]', 'zh-CN')]);
    await page.evaluate(() => globalThis.imboxI18n.ready);
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
    assert.equal(await page.textContent('h1'), '登录');
    assert.equal(await page.getAttribute('select[data-language-switch]', 'aria-label'), '语言');
    assert.equal(await page.title(), `登录 · ${BOX_NAME}`, 'the title is translated too');
    await page.reload();
    await page.evaluate(() => globalThis.imboxI18n.ready);
    assert.equal(await page.textContent('h1'), '登录', 'the choice outlives a reload');
    await page.goto(`${box.https}/no-such-page`);
    await page.evaluate(() => globalThis.imboxI18n.ready);
    assert.equal(await page.textContent('h1'), '找不到页面', 'and every page of the box follows it');
    await english.close();

    // A Chinese browser chooses English.
    const chinese = await newContext(LOOKS[1]);
    const other = await chinese.newPage();
    await other.goto(`${box.https}/login`);
    await settle(other, LOOKS[1]);
    assert.equal(await other.textContent('h1'), '登录');
    await Promise.all([other.waitForNavigation(), other.selectOption('select[data-language-switch]', 'en')]);
    await other.reload();
    await other.evaluate(() => globalThis.imboxI18n.ready);
    assert.equal(await other.evaluate(() => document.documentElement.lang), 'en');
    assert.equal(await other.textContent('h1'), 'Log in');
    assert.equal(await other.title(), `Log in · ${BOX_NAME}`);
    await chinese.close();
  });
});

// `imboxd standby`: the page the box shows when its data disk is missing or
// doubled, in both languages (what the disk reports stays as it is).
describe('the standby page in Chinese and English', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imbox-standby-'));
  const statusFile = path.join(dir, 'storage.json');
  const disk = (device, model, serial) => ({ device, model, serial, size_bytes: 500107862016 });
  const report = (problem) => JSON.stringify({
    box: '0b7e3c52-3f7d-4c1e-9a51-2f1d8f0c6a10', data: { kind: 'none', device: '' }, disks: [], problem,
  });
  const PROBLEMS = {
    missing: { kind: 'missing', disk: { model: 'Samsung T7', serial: 'S5XXNJ0R', size_bytes: 500107862016 } },
    'two-disks': { kind: 'two-disks', disks: [disk('/dev/sda', 'Samsung T7', 'S5XXNJ0R'), disk('/dev/sdb', 'SanDisk Extreme', 'SD77')] },
  };
  const MODELS = ['Samsung T7', 'SanDisk Extreme', 'S5XXNJ0R', 'SD77'];
  let child = null;
  let browser;
  let origin;
  let log = '';


  before(async () => {
    fs.writeFileSync(path.join(dir, 'empty.toml'), '');
    fs.writeFileSync(statusFile, report(PROBLEMS.missing));
    const port = await freeTcpPort();
    origin = `http://127.0.0.1:${port}`;
    child = spawn(bin('imboxd'), ['--config', path.join(dir, 'empty.toml'), '--data-dir', path.join(dir, 'data'),
      'standby', '--status', statusFile], {
      env: cleanEnv({ IMBOX_HTTP__LISTEN: `127.0.0.1:${port}`, IMBOX_HTTPS__LISTEN: '[]', IMBOX_QUIC__LISTEN: '[]' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (chunk) => { log += chunk; });
    child.stderr.on('data', (chunk) => { log += chunk; });
    await eventually('imboxd standby to answer', async () => {
      if (child.exitCode !== null) throw new Error(`imboxd standby exited:\n${log}`);
      try {
        return (await fetch(`${origin}/health`)).status === 503;
      } catch (e) {
        return false;
      }
    });
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) await browser.close();
    if (child && child.exitCode === null) child.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const look of [LOOKS[0], LOOKS[3]]) {
    it(`says what is wrong in ${look.lang} at ${look.width} px`, async () => {
      const context = await browser.newContext({ locale: look.lang, viewport: { width: look.width, height: look.height } });
      const page = await context.newPage();
      for (const [kind, problem] of Object.entries(PROBLEMS)) {
        fs.writeFileSync(statusFile, report(problem));
        const answer = await page.goto(`${origin}/`);
        assert.equal(answer.status(), 503);
        await page.evaluate(() => globalThis.imboxI18n.ready);
        const name = `standby-${kind}-${look.lang}-${look.width}`;
        await shoot(page, name);
        const text = await page.textContent('#standby-problem');
        for (const model of MODELS.filter((m) => JSON.stringify(problem).includes(m))) {
          assert.ok(text.includes(model), `${name}: the disk ${model} is named: ${text}`);
        }
        if (look.lang === 'zh-CN') {
          assert.match(text, kind === 'missing' ? /找不到|不见了/ : /都存有/);
          assert.deepEqual(await englishLeft(page, { allow: MODELS }), [], `${name}: English left`);
        } else {
          assert.match(text, kind === 'missing' ? /Plug it in/ : /disks hold this box's data/);
        }
        if (look.width <= 360) assert.deepEqual(await overflowing(page), [], `${name}: overflows`);
        assert.deepEqual(await axeViolations(page), [], `${name}: accessibility`);
      }
      await context.close();
    });
  }

  it('follows the storage service: the page changes when the problem does', async () => {
    const context = await browser.newContext({ locale: 'en-US' });
    const page = await context.newPage();
    fs.writeFileSync(statusFile, report(PROBLEMS.missing));
    await page.goto(`${origin}/`);
    await page.evaluate(() => globalThis.imboxI18n.ready);
    assert.equal(await page.textContent('h1'), 'The data disk is missing');
    fs.writeFileSync(statusFile, report(PROBLEMS['two-disks']));
    await eventually('the page to show the new problem', async () => {
      try {
        return (await page.textContent('h1')) === "Two disks hold this box's data";
      } catch (e) {
        return false; // reloading
      }
    });
    await context.close();
  });
});
