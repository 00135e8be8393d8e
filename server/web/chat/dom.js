// Building elements from code: text always goes in as text (textContent),
// never as HTML, so nothing from the box can become markup.

const t = (key, params) => globalThis.imboxI18n.t(key, params);
export { t };

/**
 * h('button.primary#send', { type: 'submit', 'data-i18n': 'chat.send' }, child…)
 * Attributes starting with "on" are listeners; `text` sets textContent
 * through a translation key when given as { key, params }.
 */
export function h(spec, attrs, ...children) {
  const tag = spec.match(/^[a-z0-9]*/)[0];
  const el = document.createElement(tag || 'div');
  for (const [, mark, name] of spec.slice(tag.length).matchAll(/([.#])([^.#]+)/g)) {
    if (mark === '#') el.id = name;
    else el.classList.add(name);
  }
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'text') {
      el.textContent = typeof value === 'object' ? t(value.key, value.params) : String(value);
    } else if (name === 'hidden') {
      el.hidden = Boolean(value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A labelled input row: <label for> + <input>, with an optional hint. */
export function field(id, labelKey, attrs, hintKey) {
  const hint = hintKey ? h('p.hint', { id: `${id}-hint`, text: { key: hintKey } }) : null;
  return h('div.field', {},
    h('label', { for: id, text: { key: labelKey } }),
    h('input', { id, name: id, ...(hint ? { 'aria-describedby': `${id}-hint` } : {}), ...attrs }),
    hint);
}

/** Text for an error answer from the box: its code, translated, else the box's own message. */
export function errorText(prefix, error) {
  const code = error && error.code;
  const params = {};
  if (error && error.retryAfterMs) params.seconds = Math.max(1, Math.ceil(error.retryAfterMs / 1000));
  const key = `${prefix}.error.${code}`;
  const text = t(key, params);
  if (text !== key) return text;
  const general = t(`chat.error.${code}`, params);
  if (general !== `chat.error.${code}`) return general;
  return t('chat.error.other', { message: (error && error.message) || String(error) });
}

/** The language switch (i18n.js fills it in and remembers the choice). */
export function languageSwitch() {
  const select = h('select.language', { 'data-language-switch': '', 'aria-label': t('language.switch') });
  globalThis.imboxI18n.apply(h('div', {}, select));
  return select;
}

/** "alice, bob and carol" / "alice、bob和carol": names joined the reader's way. */
export function nameList(names) {
  try {
    return new Intl.ListFormat(globalThis.imboxI18n.lang, { type: 'conjunction' }).format(names);
  } catch (e) {
    return names.join(', ');
  }
}
