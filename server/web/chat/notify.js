// The tab's title with the unread count, and system notifications for
// messages the person cannot see (another conversation, or a hidden tab),
// only once they allowed them: the page never asks by itself.

import { t } from './dom.js';

export function showUnread(count) {
  document.title = count > 0 ? t('chat.title.unread', { count, title: t('chat.title') }) : t('chat.title');
}

export function canAsk() {
  return 'Notification' in window && Notification.permission === 'default';
}

export async function ask() {
  if (!('Notification' in window)) return 'denied';
  return Notification.requestPermission();
}

/** A notification for `message` in conversation `c`; clicking it opens the conversation. */
export function notifyMessage(c, message, open) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const body = message.text || t('chat.message.attachments', { count: (message.attachments || []).length });
  const title = c.kind === 'group' ? t('chat.notify.group', { from: message.from, group: c.chat }) : message.from;
  try {
    const n = new Notification(title, { body, tag: `imbox-${c.id}` });
    n.addEventListener('click', () => { window.focus(); open(c.id); n.close(); });
  } catch (e) {
    // Some browsers allow notifications only from a service worker: the title still counts.
  }
}
