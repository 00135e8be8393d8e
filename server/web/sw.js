// The chat app's service worker: it keeps the app shell (the /chat and
// /join documents, their scripts, styles, catalogs, vendored libraries and
// icons) so that the app starts without the box; registered by
// server/web/chat/install.js, served at /sw.js so that it may control the
// whole origin.
//
// Network first: while the box answers, its files are used (and the copy
// refreshed), so a new imboxd's files are never hidden behind old ones; the
// copy is only for when the box cannot be reached. Messages, attachments
// and everything under /api/ or /ws never pass through here: they go to the
// box or fail, and are never kept by the worker. It also shows the
// content-free notifications of Web Push (below).
'use strict';

// Bumped when what is kept changes shape; older copies are deleted.
const CACHE = 'imbox-shell-1';

// What an offline start needs at least; the page also sends the list of what
// it actually loaded (install.js), which covers the chat app's modules.
const SHELL = [
  '/chat',
  '/assets/i18n.js',
  '/assets/vendor/msgpack.min.js',
  '/assets/vendor/tus.min.js',
  '/assets/icons/icon.svg',
  '/assets/icons/icon-192.png',
  '/manifest.webmanifest',
];

/** Whether the worker keeps and serves this same-origin path: the shell only. */
function isShell(pathname) {
  return pathname === '/chat' || pathname === '/join' || pathname === '/manifest.webmanifest'
    || (pathname.startsWith('/assets/') && !pathname.startsWith('/assets/pages/'));
}

/** Fetches `url` from the box and keeps the answer; a failure keeps nothing. */
async function keep(cache, url) {
  try {
    const response = await fetch(url, { cache: 'no-cache', credentials: 'same-origin' });
    if (response.ok && response.type === 'basic') await cache.put(url, response);
  } catch (e) {
    // Not kept: fetched again on the next visit.
  }
}

self.addEventListener('install', (event) => {
  // The shell is fetched file by file: one missing file must not stop the
  // others from being kept.
  event.waitUntil(caches.open(CACHE).then((cache) => Promise.all(SHELL.map((url) => keep(cache, url))))
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

// Push (docs/PROTOCOL.md, "Push"; the page opts in with chat/push.js): the
// box sends only a conversation id, so the notification says "New message"
// in the reader's language, which the page handed over ('push-text') and is
// kept beside the shell, since a worker cannot read the page's storage.
const PUSH_TEXT = '/push-text.json';
const PUSH_TEXT_ENGLISH = { title: 'New message', body: 'Open imbox to read it.' };

async function pushText() {
  try {
    const kept = await (await caches.open(CACHE)).match(PUSH_TEXT);
    const text = kept ? await kept.json() : null;
    if (text && typeof text.title === 'string' && typeof text.body === 'string') return text;
  } catch (e) {
    // the English below
  }
  return PUSH_TEXT_ENGLISH;
}

self.addEventListener('push', (event) => {
  let conversation = null;
  try {
    const data = event.data ? event.data.json() : null;
    if (data && Number.isSafeInteger(data.conversation) && data.conversation > 0) conversation = data.conversation;
  } catch (e) {
    // Not the box's JSON: a notification without a conversation.
  }
  event.waitUntil(pushText().then((text) => self.registration.showNotification(text.title, {
    body: text.body,
    // One notification per conversation, replaced by the next wake-up.
    tag: conversation ? `imbox-${conversation}` : 'imbox',
    icon: '/assets/icons/icon-192.png',
    data: { conversation },
  })));
});

// A click opens /chat at that conversation: in a window already showing
// /chat when there is one, else a new one.
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const conversation = event.notification.data && event.notification.data.conversation;
  event.waitUntil(self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((windows) => {
    const chat = windows.find((w) => new URL(w.url).pathname === '/chat');
    if (chat) {
      if (conversation) chat.postMessage({ type: 'open', conversation });
      return chat.focus();
    }
    return self.clients.openWindow(conversation ? `/chat#c=${conversation}` : '/chat');
  }));
});

// The page's list of what it loaded before this worker controlled it, and
// the words of push notifications.
self.addEventListener('message', (event) => {
  const data = event.data || {};
  if (data.type === 'push-text' && typeof data.title === 'string' && typeof data.body === 'string') {
    const text = JSON.stringify({ title: data.title.slice(0, 200), body: data.body.slice(0, 500) });
    event.waitUntil(caches.open(CACHE).then((cache) => cache.put(PUSH_TEXT,
      new Response(text, { headers: { 'Content-Type': 'application/json' } }))));
    return;
  }
  if (data.type !== 'keep' || !Array.isArray(data.urls)) return;
  const urls = data.urls.map((u) => {
    try {
      return new URL(u, self.location.origin);
    } catch (e) {
      return null;
    }
  }).filter((u) => u && u.origin === self.location.origin && isShell(u.pathname)).slice(0, 200);
  event.waitUntil(caches.open(CACHE).then((cache) => Promise.all(urls.map((u) => keep(cache, u.pathname + u.search))))
    .then(() => { if (event.source) event.source.postMessage({ type: 'kept', count: urls.length }); }));
});

async function networkFirst(request, url) {
  const cache = await caches.open(CACHE);
  // Documents are kept without their query or fragment: /chat?x is /chat.
  const key = request.mode === 'navigate' ? url.pathname : url.pathname + url.search;
  try {
    const response = await fetch(request);
    if (response.ok && response.type === 'basic') {
      const copy = response.clone();
      cache.put(key, copy).catch(() => {});
    }
    return response;
  } catch (error) {
    const kept = await cache.match(key);
    if (kept) return kept;
    throw error;
  }
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || !isShell(url.pathname)) return;
  // A download the page asked for with a token in a header is not the shell.
  if (request.headers.has('Authorization')) return;
  event.respondWith(networkFirst(request, url));
});
