// Attachments in the chat app: how a message's photos, voice notes, videos
// and files look (renderAttachments), and the composer's controls that pick,
// record and upload them (createAttachControls). docs/PROTOCOL.md,
// "Attachments", defines the Attachment map; docs/API.md, "Attachments", the
// uploads (tus) and downloads.
//
//   renderAttachments(list, { token, t }) → HTMLElement
//   createAttachControls({ token, t }) → {
//     element,                        the buttons, the chosen files, a status line
//     take(): Promise<Attachment[]>,  the maps for `send`, once every upload is done;
//                                     rejects with an AttachmentError (translated
//                                     message) when one failed
//     clear(),                        empties it (after sending)
//     add(files),                     adds files (a paste or a drop, say)
//     count,                          how many are chosen
//   }
//   The element fires "attachmentschange" (detail: { count, uploading }) as files
//   come, finish and go.
//
// The device token goes in an Authorization header, never in a URL: a
// download is fetched into a Blob and shown through an object URL, which is
// revoked once nothing shows it.

import { describe, kindOf } from './preview.js';
import { startUpload } from './upload.js';
import { extensionOf, startRecording, voiceSupported } from './voice.js';

/** The most attachments one message carries (protocol/src/attachment.rs). */
export const MAX_ATTACHMENTS = 10;

// The largest a picture or video is drawn in a message, in CSS pixels; the
// box keeps its proportions, so the layout does not move when it loads.
const MAX_SHOWN = 240;
// A voice note longer than this is stopped and attached: a recording lives
// in memory until it is sent.
const MAX_RECORDING_MS = 15 * 60 * 1000;

// Codes of the box (docs/API.md, "Errors") that have a message of their own.
const ERROR_CODES = new Set([
  'bad_credentials', 'too_large', 'quota_exceeded', 'media_space_full', 'rate_limited', 'invalid_argument',
  'not_found', 'unavailable', 'storage_full', 'moving', 'network', 'internal',
]);

const i18n = () => globalThis.imboxI18n;

/** An error a person reads: `message` is already translated. */
export class AttachmentError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'AttachmentError';
    this.code = code;
  }
}

function errorText(t, code) {
  return t(`media.error.${ERROR_CODES.has(code) ? code : 'internal'}`);
}

// --- small DOM helpers --------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'className') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key in node && typeof node[key] !== 'function' && !key.startsWith('aria') && key !== 'role') node[key] = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const SVG = 'http://www.w3.org/2000/svg';
// Icons drawn as paths (no files to fetch); each button also has a label.
const ICONS = {
  clip: 'M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5',
  mic: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5.5 11a6.5 6.5 0 0 0 13 0M12 17.5V21M8.5 21h7',
  stop: 'M7 7h10v10H7z',
  play: 'M8 5v14l11-7z',
  close: 'M6 6l12 12M18 6L6 18',
  retry: 'M4 12a8 8 0 1 0 2.3-5.6M4 4v4.5h4.5',
  save: 'M12 4v11m-5-5 5 5 5-5M5 20h14',
};

function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.classList.add('media-icon');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

let styled = false;
// The styles of this module come with it, so that the chat app's own
// stylesheet needs nothing for attachments.
function ensureStyles() {
  if (styled || document.querySelector('link[data-media-styles]')) {
    styled = true;
    return;
  }
  styled = true;
  document.head.append(el('link', { rel: 'stylesheet', href: '/assets/chat/attachments.css', 'data-media-styles': '' }));
}

/** "1:05" for 65,000 ms; `elapsed` counts whole seconds gone (a running clock) instead of rounding. */
export function formatDuration(t, ms, elapsed = false) {
  const exact = (Number(ms) || 0) / 1000;
  const total = Math.max(0, elapsed ? Math.floor(exact) : Math.round(exact));
  const seconds = String(total % 60).padStart(2, '0');
  return t('media.duration', { minutes: Math.floor(total / 60), seconds });
}

const formatBytes = (n) => (i18n() ? i18n().bytes(n) : `${n} B`);

/** The width and height (CSS px) to draw a picture of w × h in, within MAX_SHOWN. */
function shownSize(width, height) {
  if (!(width > 0 && height > 0)) return { width: 160, height: 120 };
  const scale = Math.min(1, MAX_SHOWN / width, MAX_SHOWN / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

function sizeBox(node, width, height) {
  const shown = shownSize(width, height);
  node.style.width = `${shown.width}px`;
  node.style.aspectRatio = `${shown.width} / ${shown.height}`;
}

// --- downloads ------------------------------------------------------------------

/** The content of attachment `id` as a Blob; rejects with an AttachmentError. */
export async function fetchAttachment(id, token, t) {
  let response;
  try {
    response = await fetch(`/api/attachments/${encodeURIComponent(id)}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
  } catch (e) {
    throw new AttachmentError('network', errorText(t, 'network'));
  }
  if (!response.ok) {
    let code = response.status === 404 ? 'not_found' : response.status === 401 ? 'bad_credentials' : 'internal';
    try {
      code = (await response.json()).error.code || code;
    } catch (e) {
      // not JSON: the status said enough
    }
    throw new AttachmentError(code, errorText(t, code));
  }
  return response.blob();
}

/** Saves `blob` as a file called `name` (the browser's download). */
function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // The download has taken the blob by the time this runs.
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function statusLine() {
  return el('p', { className: 'media-status', role: 'status', 'aria-live': 'polite' });
}

/** Puts `text` on a status line; an error is marked (and coloured) as one. */
function say(status, text, error = false) {
  status.textContent = text;
  status.classList.toggle('media-error', error);
}

// One audio or video plays at a time: loading another unloads the previous
// one (its object URL revoked), so a long conversation holds at most one
// downloaded recording in memory.
let activePlayer = null;

// --- rendering --------------------------------------------------------------------

function renderExpired(attachment, t) {
  return el('p', { className: 'media-expired' },
    el('span', { className: 'media-name', text: attachment.name }),
    el('span', { className: 'media-note', text: t('media.expired') }));
}

/** The full picture in a modal dialog; focus goes back to `opener` when it closes. */
function openViewer(attachment, ctx, opener) {
  const { t, token } = ctx;
  const titleId = `media-viewer-${Math.random().toString(36).slice(2)}`;
  const close = el('button', { type: 'button', className: 'media-button media-close', 'aria-label': t('media.viewer.close') }, icon('close'));
  const save = el('button', { type: 'button', className: 'media-button', disabled: true },
    icon('save'), el('span', { text: t('media.file.download') }));
  const status = statusLine();
  const picture = el('img', { className: 'media-full', alt: attachment.name, hidden: true });
  const dialog = el('dialog', { className: 'media-viewer', 'aria-labelledby': titleId },
    el('div', { className: 'media-viewer-bar' },
      el('h2', { id: titleId, className: 'media-name', text: attachment.name }), save, close),
    status, picture);
  let url = null;
  let blob = null;
  close.addEventListener('click', () => dialog.close());
  save.addEventListener('click', () => { if (blob) saveBlob(blob, attachment.name); });
  // A click on the backdrop (outside the picture and its bar) closes it too.
  dialog.addEventListener('click', (event) => { if (event.target === dialog) dialog.close(); });
  dialog.addEventListener('close', () => {
    if (url) URL.revokeObjectURL(url);
    url = null;
    dialog.remove();
    if (opener.isConnected) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
  say(status, t('media.loading'));
  fetchAttachment(attachment.id, token, t).then((got) => {
    if (!dialog.isConnected) return; // closed before it came
    blob = got;
    url = URL.createObjectURL(got);
    picture.addEventListener('load', () => { say(status, ''); }, { once: true });
    picture.addEventListener('error', () => { say(status, t('media.image.unreadable'), true); }, { once: true });
    picture.src = url;
    picture.hidden = false;
    save.disabled = false;
  }, (error) => {
    say(status, error.message, true);
  });
  return dialog;
}

function renderImage(attachment, ctx) {
  const { t } = ctx;
  const button = el('button', {
    type: 'button', className: 'media-picture', 'aria-label': t('media.image.open', { name: attachment.name }),
  });
  sizeBox(button, attachment.width, attachment.height);
  if (attachment.thumbnail && attachment.thumbnail.startsWith('data:image/')) {
    button.append(el('img', { src: attachment.thumbnail, alt: '', className: 'media-thumbnail' }));
  } else {
    button.append(el('span', { className: 'media-placeholder', text: attachment.name }));
  }
  button.addEventListener('click', () => openViewer(attachment, ctx, button));
  return el('figure', { className: 'media-image' }, button);
}

function renderPlayer(attachment, ctx, kind) {
  const { t, token } = ctx;
  const wrap = el('div', { className: `media-player media-${kind}` });
  const status = statusLine();
  const duration = attachment.duration_ms ? formatDuration(t, attachment.duration_ms) : '';
  const label = duration
    ? t(`media.${kind}.play_timed`, { name: attachment.name, duration })
    : t(`media.${kind}.play`, { name: attachment.name });
  const play = el('button', { type: 'button', className: 'media-play', 'aria-label': label }, icon('play'));
  if (kind === 'video') {
    sizeBox(play, attachment.width, attachment.height);
    if (attachment.thumbnail && attachment.thumbnail.startsWith('data:image/')) {
      play.prepend(el('img', { src: attachment.thumbnail, alt: '', className: 'media-thumbnail' }));
    }
  }
  const info = el('span', { className: 'media-info' },
    el('span', { className: 'media-name', text: kind === 'audio' ? t('media.audio.note') : attachment.name }),
    duration ? el('span', { className: 'media-duration', text: duration }) : null);
  wrap.append(play, info, status);
  let player = null;
  let url = null;

  const unload = () => {
    if (player) {
      player.pause();
      player.removeAttribute('src');
      player.load();
      player.replaceWith(play);
      player = null;
    }
    if (url) URL.revokeObjectURL(url);
    url = null;
    if (activePlayer === unload) activePlayer = null;
  };

  play.addEventListener('click', async () => {
    play.disabled = true;
    say(status, t('media.loading'));
    try {
      const blob = await fetchAttachment(attachment.id, token, t);
      if (activePlayer) activePlayer();
      activePlayer = unload;
      url = URL.createObjectURL(blob);
      player = el(kind, { controls: true, preload: 'auto', className: 'media-element', 'aria-label': label });
      if (kind === 'video') {
        player.playsInline = true;
        sizeBox(player, attachment.width, attachment.height);
      }
      player.src = url;
      const focused = document.activeElement === play;
      play.replaceWith(player);
      if (focused) player.focus();
      say(status, '');
      player.play().catch(() => {}); // refused autoplay: the controls are there
    } catch (error) {
      say(status, error.message, true);
    } finally {
      play.disabled = false;
    }
  });
  return wrap;
}

function renderFile(attachment, ctx) {
  const { t, token } = ctx;
  const status = statusLine();
  const size = formatBytes(attachment.size);
  const button = el('button', {
    type: 'button', className: 'media-button', 'aria-label': t('media.file.download_named', { name: attachment.name, size }),
  }, icon('save'), el('span', { text: t('media.file.download') }));
  button.addEventListener('click', async () => {
    button.disabled = true;
    say(status, t('media.file.downloading'));
    try {
      saveBlob(await fetchAttachment(attachment.id, token, t), attachment.name);
      say(status, '');
    } catch (error) {
      say(status, error.message, true);
    } finally {
      button.disabled = false;
    }
  });
  return el('div', { className: 'media-file' },
    el('span', { className: 'media-info' },
      el('span', { className: 'media-name', text: attachment.name }),
      el('span', { className: 'media-size', text: size })),
    button, status);
}

/** A message's attachments, as a list; see the header comment. */
export function renderAttachments(list, ctx) {
  ensureStyles();
  const root = el('ul', { className: 'media-list', role: 'list' });
  for (const attachment of list || []) {
    let shown;
    if (attachment.expired) shown = renderExpired(attachment, ctx.t);
    else {
      const kind = kindOf(attachment.media_type);
      if (kind === 'image') shown = renderImage(attachment, ctx);
      else if (kind === 'audio' || kind === 'video') shown = renderPlayer(attachment, ctx, kind);
      else shown = renderFile(attachment, ctx);
    }
    root.append(el('li', { className: 'media-item' }, shown));
  }
  return root;
}

// --- choosing and uploading ---------------------------------------------------------

/** A name the box takes (protocol: 1–255 bytes, no / \ control or bidi characters). */
export function fileName(name, fallback) {
  // eslint-disable-next-line no-control-regex
  let clean = String(name || '').replace(/[/\\\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '_').trim();
  if (!clean || clean === '.' || clean === '..') clean = fallback;
  const encoder = new TextEncoder();
  while (encoder.encode(clean).length > 255) {
    // Keep the extension: cut the name's middle.
    const dot = clean.lastIndexOf('.');
    const cut = dot > 0 && clean.length - dot <= 16 ? dot - 1 : clean.length - 1;
    clean = clean.slice(0, cut) + clean.slice(cut + 1);
  }
  return clean;
}

/** The file's media type, if the box takes it; else application/octet-stream. */
function mediaTypeOf(file) {
  const type = String(file.type || '');
  const printable = /^[\x20-\x7e]+$/.test(type);
  return printable && type.length <= 127 && /^[\w.+!#$&^-]+\/[\w.+!#$&^-]+(\s*;.*)?$/.test(type)
    ? type
    : 'application/octet-stream';
}

/** The composer's attachment controls; see the header comment. */
export function createAttachControls(ctx) {
  ensureStyles();
  const { t, token } = ctx;
  const items = [];
  const percent = new Intl.NumberFormat(i18n() ? i18n().lang : undefined, { style: 'percent' });

  const input = el('input', { type: 'file', multiple: true, hidden: true, tabIndex: -1, className: 'media-input' });
  const attachButton = el('button', {
    type: 'button', className: 'media-button media-attach', 'aria-label': t('media.attach.files'), title: t('media.attach.files'),
  }, icon('clip'));
  const voiceButton = el('button', {
    type: 'button', className: 'media-button media-record', 'aria-label': t('media.voice.record'), title: t('media.voice.record'),
    hidden: !voiceSupported(),
  }, icon('mic'));
  const timer = el('span', { className: 'media-timer', role: 'timer' });
  const stopButton = el('button', { type: 'button', className: 'media-button media-stop' },
    icon('stop'), el('span', { text: t('media.voice.stop') }));
  const cancelButton = el('button', {
    type: 'button', className: 'media-button media-discard', 'aria-label': t('media.voice.cancel'), title: t('media.voice.cancel'),
  }, icon('close'));
  const recordingBar = el('div', { className: 'media-recording', hidden: true }, timer, stopButton, cancelButton);
  const list = el('ul', { className: 'media-chosen', role: 'list', 'aria-label': t('media.attach.list') });
  const status = statusLine();
  const element = el('div', { className: 'media-controls' },
    el('div', { className: 'media-buttons' }, attachButton, voiceButton, input), recordingBar, list, status);

  function changed() {
    const uploading = items.filter((item) => item.state === 'uploading').length;
    list.hidden = items.length === 0;
    element.dispatchEvent(new CustomEvent('attachmentschange', { detail: { count: items.length, uploading } }));
  }

  function forget(item) {
    const at = items.indexOf(item);
    if (at >= 0) items.splice(at, 1);
    if (item.previewUrl) URL.revokeObjectURL(item.previewUrl);
    item.previewUrl = null;
    item.li.remove();
  }

  function remove(item) {
    // A finished upload is left to the box (a content no message carries is
    // swept after a day); an unfinished one is terminated now.
    if (item.state !== 'done') item.upload.cancel();
    forget(item);
    say(status, t('media.attach.removed', { name: item.name }));
    attachButton.focus();
    changed();
  }

  function begin(item) {
    item.state = 'uploading';
    item.li.classList.remove('media-failed');
    item.progress.value = 0;
    item.progress.removeAttribute('value'); // indeterminate until the first bytes
    item.text.textContent = t('media.attach.preparing');
    item.retry.hidden = true;
    item.upload = startUpload(item.file, {
      token,
      name: item.name,
      mediaType: item.mediaType,
      onProgress: (sent, total) => {
        item.progress.max = total || 1;
        item.progress.value = sent;
        item.text.textContent = t('media.attach.uploading', { percent: percent.format(total ? sent / total : 0) });
      },
    });
    item.result = Promise.all([item.upload.done, item.description]).then(([id, described]) => {
      const attachment = { id, media_type: item.mediaType, size: item.file.size, name: item.name, ...described, ...item.extra };
      item.state = 'done';
      item.progress.max = 1;
      item.progress.value = 1;
      item.text.textContent = t('media.attach.ready');
      changed();
      return attachment;
    }, (error) => {
      const code = (error && error.code) || 'internal';
      if (code !== 'cancelled') {
        item.state = 'failed';
        item.li.classList.add('media-failed');
        item.text.textContent = errorText(t, code);
        item.retry.hidden = false;
        say(status, t('media.attach.failed', { name: item.name, error: errorText(t, code) }), true);
        changed();
      }
      throw new AttachmentError(code, t('media.attach.failed', { name: item.name, error: errorText(t, code) }));
    });
    item.result.catch(() => {}); // shown in the list; take() reports it again
  }

  function addFile(file, extra = {}) {
    if (items.length >= MAX_ATTACHMENTS) {
      say(status, t('media.attach.too_many', { count: MAX_ATTACHMENTS }), true);
      return false;
    }
    const item = {
      file,
      extra,
      name: fileName(file.name, t('media.attach.unnamed')),
      mediaType: mediaTypeOf(file),
      state: 'uploading',
      previewUrl: null,
    };
    item.description = describe(file).catch(() => ({}));
    const kind = kindOf(item.mediaType);
    let preview;
    if (kind === 'image') {
      item.previewUrl = URL.createObjectURL(file);
      preview = el('img', { className: 'media-chosen-preview', src: item.previewUrl, alt: '' });
    } else {
      preview = el('span', { className: 'media-chosen-preview media-chosen-kind' }, icon(kind === 'audio' ? 'mic' : kind === 'video' ? 'play' : 'clip'));
    }
    item.text = el('span', { className: 'media-chosen-state' });
    item.progress = el('progress', { className: 'media-progress', 'aria-label': t('media.attach.progress', { name: item.name }) });
    item.retry = el('button', {
      type: 'button', className: 'media-button media-retry', 'aria-label': t('media.attach.retry', { name: item.name }),
      title: t('media.attach.retry', { name: item.name }), hidden: true,
    }, icon('retry'));
    const removeButton = el('button', {
      type: 'button', className: 'media-button media-remove', 'aria-label': t('media.attach.remove', { name: item.name }),
      title: t('media.attach.remove', { name: item.name }),
    }, icon('close'));
    const details = [formatBytes(file.size)];
    if (extra.duration_ms) details.unshift(formatDuration(t, extra.duration_ms));
    item.li = el('li', { className: 'media-chosen-item' },
      preview,
      el('span', { className: 'media-chosen-body' },
        el('span', { className: 'media-name', text: item.name }),
        el('span', { className: 'media-size', text: details.join(' · ') }),
        item.progress, item.text),
      item.retry, removeButton);
    item.retry.addEventListener('click', () => { begin(item); removeButton.focus(); changed(); });
    removeButton.addEventListener('click', () => remove(item));
    items.push(item);
    list.append(item.li);
    begin(item);
    return true;
  }

  function add(files) {
    let added = 0;
    for (const file of Array.from(files || [])) {
      if (!addFile(file)) break;
      added += 1;
    }
    if (added > 0) say(status, t('media.attach.added', { count: added }));
    changed();
    return added;
  }

  attachButton.addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    add(input.files);
    input.value = ''; // the same file may be chosen again
  });

  // --- voice notes ---
  let recording = null;
  let ticking = null;
  let finishing = Promise.resolve(); // a stopped recording on its way into the list

  function showRecording(on) {
    recordingBar.hidden = !on;
    voiceButton.hidden = on || !voiceSupported();
    attachButton.disabled = on;
    if (!on) {
      clearInterval(ticking);
      ticking = null;
    }
  }

  function finishRecording(keep) {
    const current = recording;
    if (!current) return finishing;
    recording = null;
    // take() waits for this: a note stopped just before sending is sent.
    finishing = settleRecording(current, keep).catch(() => {
      say(status, t('media.voice.failed'), true);
    });
    return finishing;
  }

  async function settleRecording(current, keep) {
    showRecording(false);
    voiceButton.focus();
    if (!keep) {
      await current.cancel();
      say(status, t('media.voice.discarded'));
      return;
    }
    const { blob, durationMs } = await current.stop();
    const stamp = new Date().toISOString().slice(0, 19).replace('T', ' ').replace(/:/g, '.');
    const name = `${t('media.voice.file_name', { time: stamp })}.${extensionOf(blob.type)}`;
    const file = new File([blob], name, { type: blob.type });
    if (addFile(file, { duration_ms: durationMs })) say(status, t('media.voice.attached', { duration: formatDuration(t, durationMs) }));
    changed();
  }

  voiceButton.addEventListener('click', async () => {
    if (recording || items.length >= MAX_ATTACHMENTS) {
      if (items.length >= MAX_ATTACHMENTS) say(status, t('media.attach.too_many', { count: MAX_ATTACHMENTS }), true);
      return;
    }
    voiceButton.disabled = true;
    try {
      recording = await startRecording();
    } catch (error) {
      const name = error && error.name;
      say(status, t(name === 'NotAllowedError' || name === 'SecurityError' ? 'media.voice.denied'
        : name === 'NotFoundError' || name === 'OverconstrainedError' ? 'media.voice.no_microphone' : 'media.voice.failed'), true);
      return;
    } finally {
      voiceButton.disabled = false;
    }
    showRecording(true);
    stopButton.focus();
    say(status, t('media.voice.recording'));
    const tick = () => {
      if (!recording) return;
      const elapsed = recording.elapsedMs();
      timer.textContent = formatDuration(t, elapsed, true);
      if (elapsed >= MAX_RECORDING_MS) finishRecording(true);
    };
    tick();
    ticking = setInterval(tick, 250);
  });
  stopButton.addEventListener('click', () => finishRecording(true));
  cancelButton.addEventListener('click', () => finishRecording(false));
  recordingBar.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      finishRecording(false);
    }
  });

  list.hidden = true;
  return {
    element,
    add,
    get count() { return items.length + (recording ? 1 : 0); },
    async take() {
      // A voice note still being recorded, or just stopped, is part of what is sent.
      await finishRecording(true);
      const taken = items.slice();
      const settled = await Promise.allSettled(taken.map((item) => item.result));
      const attachments = [];
      for (let i = 0; i < taken.length; i += 1) {
        if (!items.includes(taken[i])) continue; // removed meanwhile
        const outcome = settled[i];
        if (outcome.status === 'rejected') throw outcome.reason;
        // The same content chosen twice is sent once (the box refuses a repeat).
        if (!attachments.some((a) => a.id === outcome.value.id)) attachments.push(outcome.value);
      }
      return attachments.slice(0, MAX_ATTACHMENTS);
    },
    clear() {
      if (recording) finishRecording(false);
      for (const item of items.slice()) {
        if (item.state !== 'done') item.upload.cancel();
        forget(item);
      }
      say(status, '');
      changed();
    },
  };
}
