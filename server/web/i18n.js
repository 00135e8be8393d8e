// imbox's translations: every string a person reads comes from a message
// catalog, server/web/locales/LANG.json, never from code. Adding a language
// is adding one catalog file: the box lists the catalogs it carries in
// <meta name="imbox-languages"> and this script offers each in the switch.
//
// Used by every page (a classic script, loaded before the page's own), it
// sets globalThis.imboxI18n:
//   ready             a promise, resolved once the catalog is loaded and the
//                     page's marked elements are translated
//   t(key, params)    the text of `key`, with {name} replaced from params; a
//                     value that is an object is chosen by Intl.PluralRules
//                     on params.count ({"one": "…", "other": "…"})
//   apply(root)       translates root's marked elements (see below)
//   lang              the language in use, a BCP 47 tag such as "zh-CN"
//   time, dateTime, day, number, bytes   formatting through Intl
//
// Marks in HTML: data-i18n="key" sets the element's text, with {name}
// parameters from data-i18n-params (JSON) or, for markup inside the text, the
// child element marked data-i18n-slot="name" (kept, and put where {name} is);
// data-i18n-attr="placeholder:key aria-label:key2" sets attributes;
// <select data-language-switch> becomes the language switch.
'use strict';

(function () {
  const STORAGE_KEY = 'imbox.lang';
  const meta = document.querySelector('meta[name="imbox-languages"]');
  const available = ((meta && meta.content) || 'en').split(/\s+/).filter(Boolean);
  const FALLBACK = available.includes('en') ? 'en' : available[0];

  // The language: the remembered choice, else the first of the browser's
  // languages the box has (matching "zh-Hans-CN" or "zh" to "zh-CN" by
  // its primary subtag), else English.
  function choose() {
    let saved = null;
    try {
      saved = localStorage.getItem(STORAGE_KEY);
    } catch (e) {
      saved = null;
    }
    if (saved && available.includes(saved)) return saved;
    const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || FALLBACK];
    for (const tag of wanted) {
      const exact = available.find((a) => a.toLowerCase() === String(tag).toLowerCase());
      if (exact) return exact;
      const primary = String(tag).split('-')[0].toLowerCase();
      const close = available.find((a) => a.split('-')[0].toLowerCase() === primary);
      if (close) return close;
    }
    return FALLBACK;
  }

  const lang = choose();
  document.documentElement.lang = lang;
  let catalog = {};
  let fallback = {};
  const plurals = new Intl.PluralRules(lang);

  async function load(code) {
    try {
      const response = await fetch('/assets/locales/' + code + '.json', { credentials: 'same-origin' });
      return response.ok ? await response.json() : {};
    } catch (e) {
      return {};
    }
  }

  function t(key, params) {
    let value = Object.prototype.hasOwnProperty.call(catalog, key) ? catalog[key] : fallback[key];
    if (value === undefined) return key;
    if (value && typeof value === 'object') {
      const count = params && typeof params.count === 'number' ? params.count : 0;
      value = value[plurals.select(count)] || value.other || '';
    }
    return String(value).replace(/\{(\w+)\}/g, (whole, name) =>
      params && params[name] !== undefined && params[name] !== null ? String(params[name]) : whole);
  }

  // An element's own slots: its [data-i18n-slot] descendants that are not
  // inside a nested [data-i18n] element.
  function slotsOf(el) {
    const slots = new Map();
    el.querySelectorAll('[data-i18n-slot]').forEach((slot) => {
      if (slot.parentElement.closest('[data-i18n]') === el) slots.set(slot.dataset.i18nSlot, slot);
    });
    return slots;
  }

  function paramsOf(el) {
    try {
      return el.dataset.i18nParams ? JSON.parse(el.dataset.i18nParams) : undefined;
    } catch (e) {
      return undefined;
    }
  }

  function apply(root) {
    const scope = root || document;
    scope.querySelectorAll('[data-i18n]').forEach((el) => {
      const text = t(el.dataset.i18n, paramsOf(el));
      const slots = slotsOf(el);
      if (!slots.size) {
        el.textContent = text;
        return;
      }
      // {name} in the text is where the slot element goes: markup (code, a
      // link, data from the box) stays as it is, in the language's order.
      const parts = text.split(/\{(\w+)\}/);
      el.replaceChildren(...parts
        .map((part, i) => (i % 2 === 1 ? slots.get(part) || '{' + part + '}' : part))
        .filter((part) => part !== ''));
    });
    scope.querySelectorAll('[data-i18n-attr]').forEach((el) => {
      for (const pair of el.dataset.i18nAttr.split(/\s+/).filter(Boolean)) {
        const at = pair.indexOf(':');
        if (at > 0) el.setAttribute(pair.slice(0, at), t(pair.slice(at + 1)));
      }
    });
    scope.querySelectorAll('select[data-language-switch]').forEach(languageSwitch);
  }

  function languageSwitch(select) {
    if (select.dataset.ready) return;
    select.dataset.ready = '1';
    select.textContent = '';
    for (const code of available) {
      const option = document.createElement('option');
      option.value = code;
      // Each language named in itself, so a reader finds their own.
      let name = code;
      try {
        name = new Intl.DisplayNames([code], { type: 'language' }).of(code) || code;
      } catch (e) {
        name = code;
      }
      option.textContent = name;
      option.lang = code;
      option.selected = code === lang;
      select.append(option);
    }
    select.addEventListener('change', () => {
      try {
        localStorage.setItem(STORAGE_KEY, select.value);
      } catch (e) {
        // Not remembered (storage refused): still switch for this page.
      }
      location.reload();
    });
  }

  const number = new Intl.NumberFormat(lang);
  const timeFormat = new Intl.DateTimeFormat(lang, { hour: '2-digit', minute: '2-digit' });
  const dateTimeFormat = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' });
  const dayFormat = new Intl.DateTimeFormat(lang, { dateStyle: 'medium' });
  const UNITS = ['byte', 'kilobyte', 'megabyte', 'gigabyte', 'terabyte'];

  function bytes(n) {
    let value = Number(n) || 0;
    let unit = 0;
    while (value >= 1024 && unit < UNITS.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return new Intl.NumberFormat(lang, {
      style: 'unit',
      unit: UNITS[unit],
      unitDisplay: 'short',
      maximumFractionDigits: unit === 0 ? 0 : 1,
    }).format(value);
  }

  const ready = Promise.all([load(lang), lang === FALLBACK ? Promise.resolve({}) : load(FALLBACK)]).then(
    ([chosen, english]) => {
      catalog = chosen;
      fallback = english;
      const start = () => apply(document);
      if (document.readyState === 'loading') {
        return new Promise((resolve) => {
          document.addEventListener('DOMContentLoaded', () => { start(); resolve(); }, { once: true });
        });
      }
      start();
      return undefined;
    },
  );

  globalThis.imboxI18n = {
    ready,
    t,
    apply,
    lang,
    languages: available,
    number: (n) => number.format(n),
    time: (ms) => timeFormat.format(new Date(ms)),
    dateTime: (ms) => dateTimeFormat.format(new Date(ms)),
    day: (ms) => dayFormat.format(new Date(ms)),
    bytes,
  };
}());
