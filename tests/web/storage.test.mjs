// The storage step in a real browser: the USB disks the appliance's storage
// service found, consent before a disk with data is erased, and the progress
// bar of a move. imboxd is real; the storage service's side (storage.sh,
// which needs root and real disks) is played by this test writing the files
// storage.sh writes, the way it writes them. The boot tests run the real
// script in a VM (image/test-boot.sh).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { claimCode, eventually, fitsAndShoot, launchBrowser, phone, startBox } from './box.mjs';

const OWNER = 'olivia';
const OWNER_PASSWORD = 'violet tractor lantern 93';

const DISKS = {
  box: 'b0c5',
  data: { kind: 'sd', device: '/dev/mmcblk0p4', sd_wear_warning: true },
  disks: [
    { device: '/dev/sda', id: 'usb-Samsung_SSD_870_S6-0:0', model: 'Samsung SSD 870', serial: 'S6', size_bytes: 500107862016, state: 'blank' },
    { device: '/dev/sdb', id: 'usb-SanDisk_Extreme_Pro_X1-0:0', model: 'Extreme Pro', serial: 'X1', size_bytes: 1000204886016, state: 'has-data' },
  ],
};

describe('the storage step', () => {
  let box;
  let browser;
  let page;
  let progress;
  let request;

  // As storage.sh does: a new file renamed into place.
  function writeProgress(line) {
    fs.writeFileSync(`${progress}.tmp`, `${line}\n`);
    fs.renameSync(`${progress}.tmp`, progress);
  }

  async function check360(name) {
    const { scrollWidth } = await fitsAndShoot(page, name);
    assert.ok(scrollWidth <= 360, `${name} scrolls sideways at 360 px: scrollWidth ${scrollWidth}`);
  }

  before(async () => {
    box = await startBox();
    fs.mkdirSync(box.runDir, { recursive: true });
    fs.writeFileSync(path.join(box.runDir, 'storage.json'), JSON.stringify(DISKS));
    progress = path.join(box.runDir, 'storage-progress');
    request = path.join(box.data, 'storage-request');
    browser = await launchBrowser();
    page = await (await phone(browser)).newPage();
    const claimed = await page.request.post(`${box.https}/api/setup/claim`, {
      headers: { Origin: box.https },
      data: { code: claimCode(box.claimFile), username: OWNER, password: OWNER_PASSWORD, password_confirm: OWNER_PASSWORD },
    });
    assert.equal(claimed.status(), 201, await claimed.text());
  });

  after(async () => {
    if (browser) await browser.close();
    if (box) await box.stop();
  });

  it('warns on the status page that the data is on the SD card', async () => {
    await page.goto(`${box.https}/admin`);
    await page.waitForSelector('#st-sd-warning', { state: 'visible' });
    assert.match(await page.textContent('#st-sd-warning'), /SD card/);
    await page.click('#st-sd-warning a');
    await page.waitForURL((url) => url.pathname === '/admin/storage');
  });

  it('lists the USB disks with their model, size and state', async () => {
    await page.waitForSelector('#disk-list li');
    assert.equal(await page.textContent('#storage-disk'), 'the SD card (/dev/mmcblk0p4)');
    assert.equal(await page.isVisible('#storage-sd-warning'), true);
    const items = await page.locator('#disk-list li .what').allTextContents();
    assert.deepEqual(items, [
      'Samsung SSD 870 (465.8 GiB, /dev/sda): empty',
      'Extreme Pro (931.5 GiB, /dev/sdb): holds data',
    ]);
    await check360('storage-disks');
  });

  it('erases a disk with data only after the owner ticks the consent', async () => {
    await page.click('#disk-list li[data-device="/dev/sdb"] button');
    await page.waitForSelector('#erase-consent', { state: 'visible' });
    assert.equal(await page.evaluate(() => document.activeElement.id), 'adopt-title');
    assert.match(await page.textContent('#erase-label'), /Erase everything on Extreme Pro/);
    await check360('storage-consent');
    await page.click('#adopt-submit');
    await page.waitForFunction(() => document.getElementById('adopt-error').textContent.length > 0);
    assert.match(await page.textContent('#adopt-error'), /Tick the box/);
    assert.equal(fs.existsSync(request), false, 'no request without consent');
    // The box refuses it too, whatever a page sends.
    const csrf = (await (await page.request.get(`${box.https}/api/session`)).json()).csrf_token;
    const direct = await page.request.post(`${box.https}/api/admin/storage/adopt`, {
      headers: { Origin: box.https, 'X-CSRF-Token': csrf }, data: { device: '/dev/sdb' },
    });
    assert.equal(direct.status(), 409);
    assert.match((await direct.json()).error.message, /erases everything on it/);

    await page.check('#erase');
    await page.click('#adopt-submit');
    await page.waitForSelector('#move', { state: 'visible' });
    assert.equal(fs.readFileSync(request, 'utf8'), 'adopt /dev/sdb usb-SanDisk_Extreme_Pro_X1-0:0 1000204886016 format\n');
    assert.equal(await page.isVisible('#disk-list'), false, 'no second move while one runs');
  });

  it('shows the progress, and a failure with its reason', async () => {
    fs.rmSync(request);
    writeProgress('copying 37');
    await page.waitForFunction(() => document.getElementById('move-bar').value === 37);
    assert.match(await page.textContent('#move-text'), /Copying the data: 37 %/);
    await check360('storage-copying');
    writeProgress('failed 0 the disk could not be formatted (mkfs.ext4 failed): try another disk');
    await page.waitForFunction(() => /not moved/.test(document.getElementById('move-title').textContent));
    assert.match(await page.textContent('#move-text'), /try another disk.*takes messages again/);
    await page.waitForSelector('#disk-list li', { state: 'visible' });
  });

  it('moves the data to an empty disk without asking to erase anything, to the end', async () => {
    await page.click('#disk-list li[data-device="/dev/sda"] button');
    await page.waitForSelector('#adopt-form', { state: 'visible' });
    assert.equal(await page.isVisible('#erase-consent'), false);
    assert.match(await page.textContent('#adopt-summary'), /empty/);
    await page.click('#adopt-submit');
    await eventually('the request', () => fs.existsSync(request));
    assert.equal(fs.readFileSync(request, 'utf8'), 'adopt /dev/sda usb-Samsung_SSD_870_S6-0:0 500107862016\n');
    fs.rmSync(request);
    writeProgress('preparing 0');
    await page.waitForFunction(() => /Preparing/.test(document.getElementById('move-text').textContent));
    writeProgress('copying 80');
    await page.waitForFunction(() => document.getElementById('move-bar').value === 80);
    writeProgress('switching 100');
    await page.waitForFunction(() => /restarts on the new disk/.test(document.getElementById('move-text').textContent));
    // What storage.sh does next: imboxd stops and starts again, on the new
    // disk, with no web sessions.
    await box.restart(() => writeProgress('done 100'));
    await page.waitForSelector('#move-login', { state: 'visible' });
    assert.equal(await page.evaluate(() => document.getElementById('move-bar').value), 100);
    // The new imboxd knows no session: the page says why it must log in.
    assert.match(await page.textContent('#move-text'), /restarted on the new disk: log in again/);
    await check360('storage-done');
    await page.click('#move-login a');
    await page.waitForURL((url) => url.pathname === '/login');
  });
});
