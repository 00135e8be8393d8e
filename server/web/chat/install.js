// Installing the chat app: the service worker (/sw.js) that keeps the app
// shell for an offline start. The web app manifest is linked by chat.html.
//
//   registerServiceWorker() → Promise<ServiceWorkerRegistration | null>
//
// Browsers register a service worker only where they trust the box's
// certificate (the box's own self-signed one is not, until the owner
// installs one of theirs): there it resolves with null and nothing else
// happens. It never rejects.

/** The same-origin files this page loaded, for the worker to keep. */
function loadedFiles() {
  const files = new Set([location.pathname]);
  for (const entry of performance.getEntriesByType('resource')) {
    try {
      const url = new URL(entry.name);
      if (url.origin === location.origin && (url.pathname.startsWith('/assets/') || url.pathname === '/manifest.webmanifest')) {
        files.add(url.pathname + url.search);
      }
    } catch (e) {
      // not a URL: skip it
    }
  }
  return [...files];
}

/** Registers /sw.js for the whole origin; see the header comment. */
export async function registerServiceWorker() {
  if (!('serviceWorker' in navigator) || !globalThis.isSecureContext) return null;
  let registration;
  try {
    registration = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  } catch (e) {
    // An untrusted certificate, or a browser that refuses workers here: the
    // app works the same, only not offline.
    return null;
  }
  // What this page loaded came before the worker: hand it the list once it
  // runs. (`ready` waits for an active worker; nothing waits on this.)
  navigator.serviceWorker.ready.then((ready) => {
    if (ready.active) ready.active.postMessage({ type: 'keep', urls: loadedFiles() });
  }, () => {});
  return registration;
}
