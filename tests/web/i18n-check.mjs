// Checks every page test can reuse: English left on a page rendered in
// Chinese, content that overflows a phone's screen, axe-core's serious and
// critical accessibility violations, and screenshots.
//
//   englishLeft(page, { allow })  → [{ text, words }]
//   overflowing(page)             → [{ what, left, right, width }]
//   axeViolations(page)           → [{ id, impact, help, nodes }]
//   shoot(page, name)             → the path of out/screens/NAME.png

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { out } from './box.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

// Words that stay as they are in every language: names of things and
// standards, and units. Keep this list explicit and small: a word is here
// only when a translation would be wrong, not when translating is work.
export const ALLOWED_WORDS = [
  'imbox', 'imboxd',
  // standards and protocols, as Chinese texts write them too
  'SHA', 'QUIC', 'HTTP', 'HTTPS', 'TLS', 'USB', 'SSD', 'HDMI', 'WebSocket', 'NTP', 'CSRF', 'URI', 'URL',
  'PEM', 'ECDSA', 'Linux', 'Prometheus', 'UnifiedPush',
  // units
  'KiB', 'MiB', 'GiB', 'TiB', 'kB', 'MB', 'GB', 'TB', 'min',
];

// Whole strings that are names rather than words: URLs, host names and
// addresses, paths, file names, key fingerprints and digests, claim codes.
const NAMES = [
  /\b[a-z][a-z0-9+.-]*:\/\/\S+/gi, // URLs
  /\bimbox:pair\?\S*/gi, // pairing links
  /\bsha256:[A-Za-z0-9+/=_-]+/gi, // key fingerprints
  /\b(?:[0-9A-F]{2}:){7,}[0-9A-F]{2}\b/gi, // certificate digests
  /(?:^|\s)\/[\w./-]*/g, // paths: /dev/sda1, /admin
  /\b[\w-]+(?:\.[\w-]+)+\b/g, // host names and file names: imbox.local, imbox-claim.txt
  /\b[A-Z0-9]{4}(?:-[A-Z0-9]{4}){3}\b/g, // claim codes
];

const LATIN_WORD = /[A-Za-z]{3,}/g;

/**
 * The visible strings of `page` that still hold English words: text nodes,
 * the title, and the attributes a person meets (aria-label, placeholder,
 * alt, title, the value of buttons). `allow` adds names that stay (the box
 * name, user names, disk models the test made). Text in <code>, <kbd>,
 * <samp> and .digest is literal (something to type or compare) and text
 * marked with another `lang` than the page's is in that language on purpose
 * (the language switch names each language in itself).
 */
export async function englishLeft(page, { allow = [] } = {}) {
  const strings = await page.evaluate(() => {
    const pageLang = document.documentElement.lang;
    const literal = 'code, kbd, samp, .digest, script, style, noscript, template';
    const shown = (el) => {
      if (!el || el.closest(literal)) return false;
      const own = el.closest('[lang]');
      if (own && own.lang !== pageLang) return false;
      if (el.closest('option')) return el.closest('option').selected;
      return el.checkVisibility({ checkOpacity: false, checkVisibilityCSS: true });
    };
    const found = [];
    if (document.title.trim()) found.push({ text: document.title.trim(), where: 'title' });
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const text = n.nodeValue.trim();
      if (text && shown(n.parentElement)) found.push({ text, where: n.parentElement.tagName.toLowerCase() });
    }
    for (const el of document.body.querySelectorAll('[aria-label], [placeholder], [alt], [title], input[type=button], input[type=submit], input[type=reset]')) {
      if (!shown(el) && !(el.tagName === 'SELECT' && el.checkVisibility())) continue;
      for (const attr of ['aria-label', 'placeholder', 'alt', 'title']) {
        const value = (el.getAttribute(attr) || '').trim();
        if (value) found.push({ text: value, where: `${el.tagName.toLowerCase()}[${attr}]` });
      }
      if (el.tagName === 'INPUT' && /^(button|submit|reset)$/.test(el.type) && el.value.trim()) {
        found.push({ text: el.value.trim(), where: 'input[value]' });
      }
    }
    return found;
  });
  const allowed = new Set([...ALLOWED_WORDS, ...allow.flatMap((a) => String(a).split(/\s+/))].map((w) => w.toLowerCase()));
  const left = [];
  for (const { text, where } of strings) {
    let rest = text;
    for (const name of allow) rest = rest.split(String(name)).join(' ');
    for (const pattern of NAMES) rest = rest.replace(pattern, ' ');
    const words = (rest.match(LATIN_WORD) || []).filter((w) => !allowed.has(w.toLowerCase()));
    if (words.length) left.push({ text, where, words });
  }
  return left;
}

/**
 * What overflows the viewport sideways: the document itself when it scrolls
 * horizontally, every visible element whose right edge passes the
 * viewport's, and every element that clips its own content sideways
 * (overflow hidden with a wider content). Things moved off the screen on
 * purpose (the skip link until focused, visually hidden labels) are not.
 */
export async function overflowing(page) {
  return page.evaluate(() => {
    const root = document.documentElement;
    const width = root.clientWidth;
    const found = [];
    const describe = (el) => {
      let what = el.tagName.toLowerCase();
      if (el.id) what += `#${el.id}`;
      else if (el.classList.length) what += `.${[...el.classList].join('.')}`;
      const text = (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 60);
      return text ? `${what} "${text}"` : what;
    };
    if (root.scrollWidth > width) {
      found.push({ what: 'document', left: 0, right: root.scrollWidth, width });
    }
    for (const el of document.body.querySelectorAll('*')) {
      if (!el.checkVisibility({ checkVisibilityCSS: true })) continue;
      const rect = el.getBoundingClientRect();
      // Visually hidden on purpose: 1 px boxes and things parked off the left edge.
      if (rect.width <= 1 || rect.height <= 1 || rect.right <= 0) continue;
      if (rect.right > width + 0.5) {
        found.push({ what: describe(el), left: Math.round(rect.left), right: Math.round(rect.right), width });
        continue;
      }
      const style = getComputedStyle(el);
      if (/hidden|clip/.test(style.overflowX) && el.scrollWidth > el.clientWidth + 1) {
        found.push({ what: `${describe(el)} (clipped)`, left: Math.round(rect.left), right: Math.round(rect.left + el.scrollWidth), width });
      }
    }
    return found;
  });
}

let axeSource = null;

/**
 * axe-core's serious and critical violations on `page`. axe is evaluated
 * through the DevTools protocol, which the page's CSP does not govern, so
 * any context works (no bypassCSP needed).
 */
export async function axeViolations(page) {
  if (!axeSource) axeSource = fs.readFileSync(path.join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  const present = await page.evaluate(() => typeof globalThis.axe === 'object');
  if (!present) await page.evaluate(`${axeSource}\n;undefined`);
  const violations = await page.evaluate(async () => {
    const result = await globalThis.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary}`),
    }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** A full-page screenshot at tests/web/out/screens/NAME.png; returns its path. */
export async function shoot(page, name) {
  const dir = path.join(out, 'screens');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
