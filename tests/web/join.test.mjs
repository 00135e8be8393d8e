// Joining from an invite link in the browser (https://BOX/join#PAIRING-QUERY):
// the page registers the new member with the invite in the fragment, and the
// member chats at once; signing in on a second browser adds a device the
// admin page lists, and revoking it sends that browser back to sign-in.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  claimCode, eventually, fitsAndShoot, launchBrowser, startBox,
} from './box.mjs';

const OWNER = 'olivia';
const PASSWORD = 'violet tractor lantern 93';
const NEWCOMER = 'erin';
const NEW_PASSWORD = 'amber kettle window 28';

describe('joining from an invite link', () => {
  let box;
  let browser;
  let ownerPage;
  let csrf;
  let joinLink;
  let erin;
  const contexts = [];

  async function context() {
    const c = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 360, height: 740 }, locale: 'en-US' });
    contexts.push(c);
    return c;
  }

  before(async () => {
    box = await startBox();
    browser = await launchBrowser();
    ownerPage = await (await context()).newPage();
    const claim = await ownerPage.request.post(`${box.https}/api/setup/claim`, {
      data: { code: claimCode(box.claimFile), username: OWNER, password: PASSWORD, password_confirm: PASSWORD },
      headers: { Origin: box.https },
    });
    assert.equal(claim.status(), 201, await claim.text());
    csrf = (await claim.json()).csrf_token;
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    if (browser) await browser.close();
    if (box) await box.stop();
  });

  it('registers from the link, removes the invite from the address and chats', async () => {
    const made = await ownerPage.request.post(`${box.https}/api/admin/invites`, { data: { uses: 1 }, headers: { 'X-CSRF-Token': csrf, Origin: box.https } });
    assert.equal(made.status(), 201, await made.text());
    const invite = await made.json();
    joinLink = invite.join_link;
    assert.match(joinLink, new RegExp(`^${box.https}/join#v=1&`));

    erin = await (await context()).newPage();
    await erin.goto(joinLink);
    await erin.waitForSelector('#join-form');
    assert.equal(await erin.getAttribute('#pair-link', 'href'), `imbox:pair?${joinLink.split('#')[1]}`);
    assert.equal(await erin.textContent('#certificate-sha256'), await erin.getAttribute('body', 'data-certificate'));
    await fitsAndShoot(erin, 'join-360');

    await erin.fill('#join-username', NEWCOMER);
    await erin.fill('#join-password', NEW_PASSWORD);
    await erin.fill('#join-password2', 'something else entirely');
    await erin.click('#join-form button[type="submit"]');
    await erin.waitForFunction(() => /differ/.test(document.getElementById('join-error').textContent));
    await erin.fill('#join-password2', NEW_PASSWORD);
    await erin.click('#join-form button[type="submit"]');
    await erin.waitForURL((url) => url.pathname === '/chat');
    assert.equal(new URL(erin.url()).hash, '', 'the invite left the address');
    await erin.waitForFunction(() => globalThis.imboxChat && globalThis.imboxChat.connection.ready);

    // The owner (signed in to the chat too) and the newcomer talk.
    const owner = await (await context()).newPage();
    await owner.goto(`${box.https}/chat`);
    await owner.fill('#signin-username', OWNER);
    await owner.fill('#signin-password', PASSWORD);
    await owner.click('#signin-form button[type="submit"]');
    await owner.waitForFunction(() => globalThis.imboxChat && globalThis.imboxChat.connection.ready);
    assert.equal(await owner.getAttribute('#admin-link', 'href'), '/admin', 'admins find their pages');
    await erin.fill('#new-chat-user', OWNER);
    await erin.press('#new-chat-user', 'Enter');
    await erin.fill('#composer-text', 'thanks for the invite');
    await erin.press('#composer-text', 'Enter');
    await owner.click(`#conversations button[data-chat="${NEWCOMER}"]`);
    await owner.waitForSelector('#messages li .text:text-is("thanks for the invite")');
    await owner.fill('#composer-text', 'welcome');
    await owner.press('#composer-text', 'Enter');
    await erin.waitForSelector('#messages li .text:text-is("welcome")');
  });

  it('explains a used-up invite', async () => {
    const again = await (await context()).newPage();
    await again.goto(joinLink);
    await again.fill('#join-username', 'frank');
    await again.fill('#join-password', NEW_PASSWORD);
    await again.fill('#join-password2', NEW_PASSWORD);
    await again.click('#join-form button[type="submit"]');
    await again.waitForFunction(() => /used up or expired/.test(document.getElementById('join-error').textContent));
    assert.equal(await again.evaluate(() => localStorage.getItem('imbox.device')), null);
  });

  it('lists a second browser as a new device, and sends it back to sign-in when revoked', async () => {
    const second = await (await context()).newPage();
    await second.goto(`${box.https}/chat`);
    await second.fill('#signin-username', NEWCOMER);
    await second.fill('#signin-password', NEW_PASSWORD);
    await second.click('#signin-form button[type="submit"]');
    await second.waitForFunction(() => globalThis.imboxChat && globalThis.imboxChat.connection.ready);
    const device = JSON.parse(await second.evaluate(() => localStorage.getItem('imbox.device')));

    await ownerPage.goto(`${box.https}/admin/users`);
    const row = ownerPage.locator(`#users tr[data-user="${NEWCOMER}"]`);
    await row.waitFor();
    assert.equal((await row.locator('td[data-label="Devices"]').textContent()).trim(), '2');

    const revoked = await ownerPage.request.delete(`${box.https}/api/admin/users/${NEWCOMER}/devices/${device.device}`, { headers: { 'X-CSRF-Token': csrf, Origin: box.https } });
    assert.equal(revoked.status(), 204);
    await second.waitForSelector('#signin-form');
    assert.match(await second.textContent('#signin-notice'), /revoked/);
    assert.equal(await second.evaluate(() => localStorage.getItem('imbox.device')), null);
    // The first browser is still signed in.
    await eventually('the first browser still online', () => erin.evaluate(() => globalThis.imboxChat.connection.ready));
  });
});
