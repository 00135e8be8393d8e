// "Use my own certificate" on the settings page, in a real browser: a test CA
// and a leaf for localhost are made with the openssl command line; the owner
// pastes the chain, picks the key file (read by FileReader) and submits; the
// page shows the new certificate's subject and SHA-256, and the box serves it
// to a TLS client that trusts only the test CA.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';

import { claimCode, fitsAndShoot, launchBrowser, phone, run, startBox } from './box.mjs';

const OWNER = 'olivia';
const OWNER_PASSWORD = 'violet tractor lantern 93';

/** A test CA and a leaf it signed for localhost and 127.0.0.1, as PEM files in `dir`. */
async function makeCertificates(dir) {
  const openssl = async (...args) => {
    const result = await run('openssl', args, {});
    assert.equal(result.code, 0, `openssl ${args.join(' ')}: ${result.stderr}`);
  };
  const file = (name) => path.join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl('req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '30',
    '-subj', '/CN=imbox browser test CA');
  await openssl('req', ...ec, '-keyout', file('leaf.key'), '-out', file('leaf.csr'), '-subj', '/CN=localhost');
  fs.writeFileSync(file('leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await openssl('x509', '-req', '-in', file('leaf.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'),
    '-CAcreateserial', '-out', file('leaf.crt'), '-days', '30', '-extfile', file('leaf.ext'));
  return {
    ca: fs.readFileSync(file('ca.crt'), 'utf8'),
    leaf: fs.readFileSync(file('leaf.crt'), 'utf8'),
    keyFile: file('leaf.key'),
  };
}

/** The leaf a TLS client that trusts only `ca` is served at `url` (null if it refuses it). */
function servedTo(url, ca) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = tls.connect({ host: hostname, port: Number(port), servername: 'localhost', ca }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert.fingerprint256);
    });
    socket.once('error', () => resolve(null));
  });
}

describe('the settings page installs the owner\'s own certificate', () => {
  let box;
  let browser;
  let certs;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imbox-web-cert-'));

  before(async () => {
    [box, browser, certs] = await Promise.all([startBox(), launchBrowser(), makeCertificates(dir)]);
  });

  after(async () => {
    if (browser) await browser.close();
    if (box) await box.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('uploads a chain and key through the form and shows the new certificate', async () => {
    const context = await phone(browser);
    const page = await context.newPage();
    const claimed = await page.request.post(`${box.https}/api/setup/claim`, {
      data: { code: claimCode(box.claimFile), username: OWNER, password: OWNER_PASSWORD, password_confirm: OWNER_PASSWORD },
    });
    assert.equal(claimed.status(), 201, await claimed.text());
    assert.equal(await servedTo(box.https, certs.ca), null, 'the box\'s own certificate is not the test CA\'s');

    await page.goto(`${box.https}/admin/settings`);
    await page.waitForFunction(() => document.getElementById('cert-sha256').textContent !== '…');
    assert.match(await page.textContent('#cert-subject'), /CN=imbox/);
    assert.equal(await page.isVisible('#cert-use-box'), false, 'nothing to go back to yet');

    await page.fill('#cert-chain', certs.leaf + certs.ca);
    await page.setInputFiles('#cert-key-file', certs.keyFile);
    await page.waitForFunction(() => document.getElementById('cert-key').value.includes('PRIVATE KEY'));
    await page.click('#cert-upload-form button[type="submit"]');
    await page.waitForFunction(() => document.getElementById('cert-notice').textContent.length > 0);

    const digest = new crypto.X509Certificate(certs.leaf).fingerprint256;
    assert.equal(await page.textContent('#cert-sha256'), digest);
    assert.match(await page.textContent('#cert-subject'), /CN=localhost/);
    assert.match(await page.textContent('#cert-names'), /localhost, 127\.0\.0\.1/);
    assert.equal(await page.inputValue('#cert-key'), '', 'the key is not left on the page');
    assert.equal(await page.isVisible('#cert-use-box'), true);
    const { scrollWidth } = await fitsAndShoot(page, 'settings-certificate');
    assert.ok(scrollWidth <= 360, `the settings page scrolls sideways at 360 px: ${scrollWidth}`);

    assert.equal(await servedTo(box.https, certs.ca), digest, 'HTTPS now serves it to clients that trust the CA');
    await context.close();
  });

  it('refuses a key that does not belong to the certificate, in Chinese', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'zh-CN' });
    const page = await context.newPage();
    const login = await page.request.post(`${box.https}/api/login`, { data: { username: OWNER, password: OWNER_PASSWORD } });
    assert.equal(login.status(), 200, await login.text());
    await page.goto(`${box.https}/admin/settings`);
    await page.waitForFunction(() => document.getElementById('cert-sha256').textContent !== '…');
    assert.equal(await page.textContent('#cert-title'), '证书');
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await page.fill('#cert-chain', certs.leaf);
    await page.fill('#cert-key', privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await page.click('#cert-upload-form button[type="submit"]');
    await page.waitForFunction(() => document.getElementById('cert-upload-error').textContent.length > 0);
    assert.match(await page.textContent('#cert-upload-error'), /私钥与此证书不匹配/);
    await context.close();
  });
});
