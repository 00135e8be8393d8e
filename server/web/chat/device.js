// The device's credentials in this browser (localStorage "imbox.device",
// shared with sign-in and join), and the name the device is listed under.

import { t } from './dom.js';

const KEY = 'imbox.device';

export function loadDevice() {
  try {
    const device = JSON.parse(localStorage.getItem(KEY));
    if (device && typeof device.token === 'string' && typeof device.user === 'string') return device;
  } catch (e) {
    // A damaged entry is as good as none: the person signs in again.
  }
  return null;
}

export function saveDevice(authenticated, token) {
  const device = { token, user: authenticated.user, device: Number(authenticated.device), admin: Boolean(authenticated.admin) };
  localStorage.setItem(KEY, JSON.stringify(device));
  return device;
}

export function forgetDevice() {
  localStorage.removeItem(KEY);
}

// The name on the user's device list: "Chromium on Linux". It must follow the
// protocol's device-name rules (1–64 bytes, no slashes, control or
// bidirectional characters), so anything odd is dropped.
export function deviceName() {
  const data = navigator.userAgentData;
  let browser = '';
  let platform = '';
  if (data && Array.isArray(data.brands)) {
    const brand = data.brands.map((b) => b.brand).find((b) => !/not.?a.?brand/i.test(b) && b !== 'Chromium')
      || data.brands.map((b) => b.brand).find((b) => !/not.?a.?brand/i.test(b));
    browser = brand || '';
    platform = data.platform || '';
  }
  const ua = navigator.userAgent || '';
  if (!browser) {
    const known = [['Edg/', 'Edge'], ['Firefox/', 'Firefox'], ['Chromium/', 'Chromium'], ['Chrome/', 'Chrome'], ['Safari/', 'Safari']];
    browser = (known.find(([mark]) => ua.includes(mark)) || [null, t('chat.device.browser')])[1];
  }
  if (!platform) {
    const systems = [['Android', 'Android'], ['iPhone', 'iOS'], ['iPad', 'iPadOS'], ['Windows', 'Windows'], ['Mac OS', 'macOS'], ['CrOS', 'ChromeOS'], ['Linux', 'Linux']];
    platform = (systems.find(([mark]) => ua.includes(mark)) || [null, ''])[1];
  }
  let name = platform ? t('chat.device.name', { browser, platform }) : browser;
  name = name.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069/\\]/g, '').trim();
  while (new TextEncoder().encode(name).length > 64) name = name.slice(0, -1);
  return name || t('chat.device.browser');
}
