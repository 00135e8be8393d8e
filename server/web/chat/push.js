// "Notify me when this tab is closed": Web Push for this browser, opt-in.
// The page subscribes with the box's VAPID key and registers the
// subscription over the session (register_push, docs/PROTOCOL.md "Push");
// the box then wakes this browser's push service while the tab is closed,
// with the conversation id only, and the service worker (/sw.js) shows a
// notification without content ("New message").
//
//   pushAvailable()            → Promise<boolean>: worker, PushManager, permission not denied
//   pushIsOn()                 → Promise<boolean>: this browser has a subscription
//   turnPushOn(connection)     → Promise<void>, after asking for the notification permission
//   turnPushOff(connection)    → Promise<void>
//   forgetPush()               → Promise<void>: unsubscribes (logout; the box drops its copy itself)
//
// A browser registers service workers only where it trusts the box's
// certificate, and its push service is its vendor's (on the internet): the
// box must reach it (the admin pages' Push section says when it cannot).

import { t } from './dom.js';

async function registration() {
  if (!('serviceWorker' in navigator) || !('PushManager' in window) || !globalThis.isSecureContext) return null;
  try {
    return (await navigator.serviceWorker.getRegistration('/')) || null;
  } catch (e) {
    return null;
  }
}

export async function pushAvailable() {
  if (!('Notification' in window) || Notification.permission === 'denied') return false;
  return Boolean(await registration());
}

export async function pushIsOn() {
  const reg = await registration();
  return Boolean(reg && await reg.pushManager.getSubscription());
}

/** The base64url key as the bytes PushManager wants. */
function keyBytes(b64url) {
  const base64 = b64url.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (b64url.length % 4)) % 4);
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** Hands the worker the notification's words in the reader's language (it cannot read the page's storage). */
function tellWorker(reg) {
  const worker = reg.active || reg.waiting || reg.installing;
  if (worker) worker.postMessage({ type: 'push-text', title: t('chat.push.title'), body: t('chat.push.body') });
}

export async function turnPushOn(connection) {
  const reg = await registration();
  if (!reg) throw new Error(t('chat.push.unavailable'));
  if (Notification.permission !== 'granted' && await Notification.requestPermission() !== 'granted') {
    throw new Error(t('chat.push.denied'));
  }
  const { key } = await connection.request({ type: 'push_key' });
  let subscription = await reg.pushManager.getSubscription();
  // A subscription made for another key (another box) cannot carry this box's wake-ups.
  if (subscription && subscription.options && subscription.options.applicationServerKey) {
    const old = new Uint8Array(subscription.options.applicationServerKey);
    const wanted = keyBytes(key);
    if (old.length !== wanted.length || old.some((b, i) => b !== wanted[i])) {
      await subscription.unsubscribe();
      subscription = null;
    }
  }
  if (!subscription) {
    subscription = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
  }
  const json = subscription.toJSON();
  tellWorker(reg);
  await connection.request({
    type: 'register_push', kind: 'webpush', endpoint: json.endpoint, p256dh: json.keys.p256dh, auth: json.keys.auth,
  });
}

export async function turnPushOff(connection) {
  await connection.request({ type: 'unregister_push' });
  await forgetPush();
}

export async function forgetPush() {
  const reg = await registration();
  const subscription = reg && await reg.pushManager.getSubscription();
  if (subscription) await subscription.unsubscribe().catch(() => {});
}
