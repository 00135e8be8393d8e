// The offline banner: shown while there is no session, with the time to the
// next attempt and a button to try at once.

import { h, t } from './dom.js';

export function connectionBanner(connection) {
  const text = h('span#offline-text');
  const retry = h('button#retry-now', { type: 'button', text: { key: 'chat.offline.retry' }, onclick: () => connection.retryNow() });
  const banner = h('div.banner#offline', { role: 'status', hidden: true }, text, retry);
  let timer = null;
  const tick = () => {
    if (connection.retryAt) {
      const seconds = Math.max(0, Math.ceil((connection.retryAt - Date.now()) / 1000));
      text.textContent = t('chat.offline.retrying', { seconds });
    } else {
      text.textContent = navigator.onLine === false ? t('chat.offline.no_network') : t('chat.offline.connecting');
    }
  };
  connection.addEventListener('offline', () => {
    banner.hidden = false;
    tick();
    clearInterval(timer);
    timer = setInterval(tick, 1000);
  });
  connection.addEventListener('ready', () => {
    banner.hidden = true;
    clearInterval(timer);
  });
  return banner;
}
