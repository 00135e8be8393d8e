// The first-run setup and the admin pages in a real browser: Playwright
// drives Debian's chromium against a real imboxd on loopback, the way an
// owner and a member would use them. The steps run in order and build on
// one another (claim, invite, pair, revoke).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import jsQR from 'jsqr';
import { PNG } from 'pngjs';

import {
  bin, certificateDigest, claimCode, cleanEnv, eventually, fitsAndShoot, launchBrowser, phone, run, startBox,
} from './box.mjs';

const OWNER = 'olivia';
const OWNER_PASSWORD = 'violet tractor lantern 93';
const MEMBER = 'bob';
const MEMBER_PASSWORD = 'quiet otter harbour 57';

describe('imbox setup and admin pages', () => {
  let box;
  let browser;
  let owner; // the owner's page (phone-sized)
  let code;
  let pairingUri;
  const profiles = fs.mkdtempSync(path.join(os.tmpdir(), 'imbox-web-profiles-'));
  const memberProfile = path.join(profiles, MEMBER);
  const widths = {};

  // Every page is checked at 360 px as it is visited.
  async function check360(page, name) {
    const { scrollWidth } = await fitsAndShoot(page, name);
    widths[name] = scrollWidth;
    assert.ok(scrollWidth <= 360, `${name} scrolls sideways at 360 px: scrollWidth ${scrollWidth}`);
  }

  before(async () => {
    box = await startBox();
    browser = await launchBrowser();
    owner = await (await phone(browser)).newPage();
    code = claimCode(box.claimFile);
  });

  after(async () => {
    if (browser) await browser.close();
    if (box) await box.stop();
    fs.rmSync(profiles, { recursive: true, force: true });
  });

  it('plain HTTP shows what the box is, its HTTPS address and the certificate digest', async () => {
    const response = await owner.goto(`${box.http}/`);
    assert.equal(response.status(), 200);
    assert.equal((await owner.textContent('#certificate-sha256')).trim(), certificateDigest(box.data));
    assert.match(await owner.textContent('#fingerprint'), /^sha256:/);
    assert.equal(await owner.getAttribute('a.button', 'href'), `${box.https}/`);
    // A new box tells its visitor where the claim code is.
    const where = await owner.textContent('#claim-code-where');
    for (const place of ['make flash', 'imbox-claim.txt', 'HDMI']) {
      assert.ok(where.includes(place), `the landing page does not mention ${place}: ${where}`);
    }
    await check360(owner, 'landing');
    const setup = await owner.goto(`${box.http}/setup`);
    assert.equal(new URL(setup.url()).protocol, 'https:', 'plain HTTP sends the setup page to HTTPS');
  });

  it('refuses a wrong claim code', async () => {
    await owner.goto(`${box.https}/setup`);
    await check360(owner, 'setup-code');
    await owner.fill('#code', 'AAAA-BBBB-CCCC-DDDD');
    await owner.click('#code-form button[type="submit"]');
    await owner.waitForFunction(() => document.getElementById('code-error').textContent.length > 0);
    assert.match(await owner.textContent('#code-error'), /not this box's claim code/);
    assert.equal(await owner.isVisible('#step-owner'), false);
  });

  it('claims the box with the right code, then names it and shows its storage', async () => {
    await owner.fill('#code', code.toLowerCase());
    await owner.press('#code', 'Enter');
    await owner.waitForSelector('#step-owner', { state: 'visible' });
    assert.equal(await owner.evaluate(() => document.activeElement.id), 'username', 'focus moves to the next step');
    await owner.fill('#username', OWNER);
    await owner.fill('#password', 'password1');
    await owner.waitForFunction(() => /not enough/.test(document.getElementById('password-strength').textContent));
    await owner.fill('#password', OWNER_PASSWORD);
    await owner.waitForFunction(() => /good enough/.test(document.getElementById('password-strength').textContent));
    assert.doesNotMatch(await owner.textContent('#password-strength'), /null|undefined/);
    await owner.fill('#password2', OWNER_PASSWORD);
    await check360(owner, 'setup-owner');
    await owner.click('#owner-form button[type="submit"]');
    await owner.waitForURL('**/admin/welcome');
    await owner.waitForFunction(() => document.getElementById('box-name').value.length > 0);
    await check360(owner, 'setup-name');
    await owner.fill('#box-name', 'Test box');
    await owner.click('#name-form button[type="submit"]');
    await owner.waitForSelector('#step-storage', { state: 'visible' });
    await owner.waitForFunction(() => document.getElementById('storage-dir').textContent !== '…');
    assert.equal(await owner.textContent('#storage-dir'), box.data);
    assert.match(await owner.textContent('#storage-free'), /B$/);
    await check360(owner, 'setup-storage');
    await owner.click('#to-status');
    await owner.waitForURL((url) => url.pathname === '/admin');
    await owner.waitForFunction(() => document.getElementById('st-version').textContent !== '…');
    assert.equal(await owner.textContent('#st-name'), 'Test box');
    for (const number of ['#st-quic', '#st-wss', '#st-ws', '#st-sessions', '#st-stored']) {
      assert.match(await owner.textContent(number), /^\d+$/, `${number} shows a number`);
    }
    assert.equal(await owner.textContent('#st-users'), '1');
    assert.match(await owner.textContent('#st-fingerprint'), /^sha256:/);
    assert.equal(await owner.textContent('#st-certificate'), certificateDigest(box.data));
    await check360(owner, 'status');
  });

  it('does not take the claim code again', async () => {
    assert.equal(fs.existsSync(box.claimFile), false, 'the claim file is gone');
    const verify = await owner.request.post(`${box.https}/api/setup/verify`, { data: { code } });
    assert.equal(verify.status(), 410);
    assert.equal((await verify.json()).error.code, 'already_claimed');
    const other = await (await phone(browser)).newPage();
    const page = await other.goto(`${box.https}/setup`);
    assert.equal(page.status(), 410);
    assert.match(await other.textContent('h1'), /has an owner/);
    await check360(other, 'setup-gone');
    await other.context().close();
  });

  it('creates an invite whose QR code pairs a new member', async () => {
    await owner.goto(`${box.https}/admin/invites`);
    await owner.fill('#invite-uses', '1');
    await owner.selectOption('#invite-expiry', '24');
    await owner.click('#invite-form button[type="submit"]');
    await owner.waitForSelector('#new-invite', { state: 'visible' });
    await owner.waitForFunction(() => {
      const img = document.getElementById('invite-qr');
      return img.complete && img.naturalWidth > 0;
    });
    await owner.waitForSelector('#invites tbody tr');
    await check360(owner, 'invites');
    const shot = PNG.sync.read(await owner.locator('#invite-qr').screenshot());
    const decoded = jsQR(new Uint8ClampedArray(shot.data), shot.width, shot.height);
    assert.ok(decoded, 'the QR code on the page can be read');
    pairingUri = decoded.data;
    // The QR code carries the web join link (a phone's camera opens the join
    // page); the CLI, like an app, pairs with the same link.
    assert.match(pairingUri, new RegExp(`^${box.https}/join#v=1&fp=sha256`));
    assert.equal(pairingUri, await owner.inputValue('#invite-link'), 'the QR code carries the link shown');
    assert.match(await owner.inputValue('#invite-pair'), /^imbox:pair\?v=1&/);
    assert.match(pairingUri, /name=Test(\+|%20)box/);

    const paired = await run(bin('imbox'), ['--profile', memberProfile, 'pair', pairingUri, MEMBER],
      { IMBOX_PASSWORD: MEMBER_PASSWORD });
    assert.equal(paired.code, 0, `imbox pair failed: ${paired.stderr}`);
    const saved = fs.readFileSync(path.join(memberProfile, 'profile.json'), 'utf8');
    assert.match(saved, /"bob"/, 'the member profile names the new account');
  });

  it('lists the new member', async () => {
    await owner.goto(`${box.https}/admin/users`);
    const row = owner.locator(`#users tr[data-user="${MEMBER}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), /member/);
    assert.match(await row.locator('td[data-label="Devices"]').textContent(), /^1$/);
    await check360(owner, 'users');
  });

  it("ends a member's session when the admin revokes its device", async () => {
    const listener = spawn(bin('imbox'), ['--profile', memberProfile, 'listen'], {
      env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    listener.stderr.on('data', (chunk) => { stderr += chunk; });
    const exited = new Promise((resolve) => { listener.once('close', (status) => resolve(status)); });
    try {
      await eventually('the member to be online', async () => {
        const status = await (await owner.request.get(`${box.https}/api/admin/status`)).json();
        return status.connections.sessions >= 1;
      });
      await owner.click(`#users tr[data-user="${MEMBER}"] button:has-text("Devices")`);
      await owner.waitForSelector('#devices', { state: 'visible' });
      await check360(owner, 'user-devices');
      await owner.click('#device-list button:has-text("Revoke")');
      const status = await Promise.race([
        exited,
        new Promise((resolve) => { setTimeout(() => resolve('still running'), 15000); }),
      ]);
      assert.notEqual(status, 'still running', 'imbox listen must end when its device is revoked');
      assert.notEqual(status, 0);
      assert.match(stderr, /revoked/);
      await owner.waitForFunction(() => /Revoked/.test(document.getElementById('users-notice').textContent));
    } finally {
      listener.kill('SIGKILL');
    }
  });

  it('lets the logged-in browser upload an attachment and shows media per user on the status page', async () => {
    await owner.goto(`${box.https}/admin`);
    const result = await owner.evaluate(async () => {
      const session = await (await fetch('/api/session')).json();
      const headers = { 'Tus-Resumable': '1.0.0', 'X-CSRF-Token': session.csrf_token };
      const created = await fetch('/api/uploads', {
        method: 'POST',
        headers: { ...headers, 'Upload-Length': '5', 'Upload-Metadata': 'filename bm90ZS50eHQ=' },
      });
      const patched = await fetch(created.headers.get('location'), {
        method: 'PATCH',
        headers: { ...headers, 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
        body: 'hello',
      });
      const id = patched.headers.get('imbox-attachment');
      const download = await fetch(`/api/attachments/${id}`);
      return { created: created.status, patched: patched.status, id, text: await download.text() };
    });
    assert.equal(result.created, 201);
    assert.equal(result.patched, 204);
    assert.equal(result.id, '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    assert.equal(result.text, 'hello');
    await owner.reload();
    const row = owner.locator('#st-media-users tbody tr');
    await row.first().waitFor();
    assert.match(await row.first().textContent(), new RegExp(`${OWNER}\\s*5 B`));
    assert.match(await owner.textContent('#st-media'), /^5 B in 1 file$/);
    await check360(owner, 'status-media');
  });

  it('gives a member 403 on every admin endpoint and page', async () => {
    const context = await phone(browser);
    const member = await context.newPage();
    await member.goto(`${box.https}/login`);
    await check360(member, 'login');
    await member.fill('#username', MEMBER);
    await member.fill('#password', MEMBER_PASSWORD);
    await member.click('#login-form button[type="submit"]');
    await member.waitForURL('**/member');
    await member.waitForFunction(() => document.getElementById('member-name').textContent === 'bob');
    await check360(member, 'member');
    for (const endpoint of ['status', 'users', 'invites', 'settings', `users/${OWNER}/devices`]) {
      const answer = await member.request.get(`${box.https}/api/admin/${endpoint}`);
      assert.equal(answer.status(), 403, endpoint);
      assert.equal((await answer.json()).error.code, 'not_admin', endpoint);
    }
    const [status, errorCode] = await member.evaluate(async () => {
      const session = await (await fetch('/api/session')).json();
      const r = await fetch('/api/admin/users', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf_token },
        body: JSON.stringify({ username: 'mallory', password: 'long enough passphrase 77', admin: true }),
      });
      return [r.status, (await r.json()).error.code];
    });
    assert.deepEqual([status, errorCode], [403, 'not_admin']);
    const page = await member.goto(`${box.https}/admin/users`);
    assert.equal(page.status(), 403);
    assert.equal((await member.request.get(`${box.https}/metrics`)).status(), 403);
    await context.close();
  });

  it('refuses a state change without the CSRF token', async () => {
    await owner.goto(`${box.https}/admin/settings`);
    await owner.waitForFunction(() => document.getElementById('settings-name').value.length > 0);
    await check360(owner, 'settings');
    const [status, errorCode] = await owner.evaluate(async () => {
      const r = await fetch('/api/admin/settings', {
        method: 'PUT',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ box_name: 'Hijacked' }),
      });
      return [r.status, (await r.json()).error.code];
    });
    assert.deepEqual([status, errorCode], [403, 'csrf']);
    const settings = await (await owner.request.get(`${box.https}/api/admin/settings`)).json();
    assert.equal(settings.box_name, 'Test box', 'nothing changed');
    // The form itself sends the token.
    await owner.fill('#settings-name', 'Family box');
    await owner.check('#settings-invite');
    await owner.click('#settings-form button[type="submit"]');
    await owner.waitForFunction(() => document.getElementById('settings-notice').textContent === 'Saved.');
  });

  it('fits every page into a desktop window too', async () => {
    const desktop = await (await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } })).newPage();
    const login = await desktop.goto(`${box.https}/admin`);
    assert.match(login.url(), /\/login\?next=\/admin$/, 'admin pages send strangers to the login page');
    await desktop.fill('#username', OWNER);
    await desktop.fill('#password', OWNER_PASSWORD);
    await desktop.click('#login-form button[type="submit"]');
    await desktop.waitForURL((url) => url.pathname === '/admin');
    await desktop.waitForFunction(() => document.getElementById('st-version').textContent !== '…');
    const { scrollWidth } = await fitsAndShoot(desktop, 'status-desktop');
    assert.ok(scrollWidth <= 1280);
    await desktop.click('#logout');
    await desktop.waitForURL('**/login');
    assert.equal((await desktop.request.get(`${box.https}/api/session`)).status(), 401, 'logged out');
    await desktop.context().close();
    assert.ok(Object.keys(widths).length >= 12, `pages checked at 360 px: ${Object.keys(widths).join(', ')}`);
  });
});
