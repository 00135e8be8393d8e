// How to compare the box's certificate once: the box is its own authority,
// so the browser warns about it; the person checks that the SHA-256 the
// browser shows is the one the box printed (here, and on its landing page).

import { h } from './dom.js';

export function certificateNote() {
  const digest = document.body.dataset.certificate || '';
  return h('section.certificate', { 'aria-labelledby': 'certificate-title' },
    h('h2#certificate-title', { text: { key: 'chat.cert.title' } }),
    h('p', { text: { key: 'chat.cert.why' } }),
    h('p', { text: { key: 'chat.cert.where' } }),
    h('p.digest#certificate-sha256', { translate: 'no' }, digest),
    h('p', { text: { key: 'chat.cert.match' } }));
}
