// imbox pages: one script for every page, no dependencies, nothing loaded
// from elsewhere. Each page's <body data-page="…"> picks what runs. Data
// from the box is put into the page as text (textContent), never as HTML.
// Every string a person reads comes from the message catalogs through
// imboxI18n (i18n.js, loaded first); dates, numbers and sizes go through
// Intl in the page's language.
'use strict';

(function () {
  const byId = (id) => document.getElementById(id);
  const i18n = globalThis.imboxI18n;
  const t = (key, params) => i18n.t(key, params);
  let csrf = null;

  class ApiError extends Error {
    constructor(code, message, detail) {
      super(message);
      this.code = code;
      this.detail = detail || {};
    }
  }

  // Calls the JSON API; throws ApiError with the box's own message. Without
  // a session it goes to the login page, unless `stay` (the caller handles it).
  async function api(method, path, body, stay) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (csrf && method !== 'GET') headers['X-CSRF-Token'] = csrf;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError('network', t('error.network'));
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {
        code: 'http_' + response.status,
        message: t('error.http', { status: response.status }),
      };
      if (error.code === 'not_logged_in' && !stay && document.body.dataset.page !== 'login') {
        location.assign('/login?next=' + encodeURIComponent(location.pathname));
      }
      throw new ApiError(error.code, error.message, error);
    }
    return data;
  }

  // What went wrong, in the page's language: the catalog's text for the
  // box's error code when it has one, else the box's own (English) message,
  // which names what the catalog cannot (a field, a rule's detail).
  function errorText(e) {
    if (e.code === 'weak_password') {
      return t('error.weak_password', { advice: strengthAdvice(e.detail.strength) });
    }
    if (e instanceof ApiError && !e.code.startsWith('http_') && e.code !== 'network') {
      const key = 'error.' + e.code;
      const params = {
        name: e.detail.name,
        seconds: Math.max(1, Math.floor((e.detail.retry_after_ms || 0) / 1000)),
      };
      const text = t(key, params);
      if (text !== key) return text;
    }
    return e.message || String(e);
  }

  // Puts text (or a number: 0 shows as 0) into an element.
  function say(id, text) {
    const el = byId(id);
    if (el) el.textContent = text === null || text === undefined ? '' : String(text);
  }

  // Runs a form's action with its button disabled; shows errors in errorId.
  function onSubmit(formId, errorId, action) {
    const form = byId(formId);
    if (!form) return;
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      say(errorId, '');
      const buttons = form.querySelectorAll('button[type="submit"]');
      buttons.forEach((b) => { b.disabled = true; });
      try {
        await action(form);
      } catch (e) {
        say(errorId, errorText(e));
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  function node(tag, attrs, ...children) {
    const el = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => {
      if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value);
    });
    children.flat().forEach((child) => {
      if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
    });
    return el;
  }

  // Binary units as the status and storage pages always showed them (KiB,
  // MiB…), the number written the page language's way.
  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const WHOLE = new Intl.NumberFormat(i18n.lang, { maximumFractionDigits: 0, useGrouping: false });
  const TENTHS = new Intl.NumberFormat(i18n.lang, { minimumFractionDigits: 1, maximumFractionDigits: 1, useGrouping: false });

  function bytes(n) {
    if (n === null || n === undefined) return t('common.unknown');
    let i = 0;
    while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i += 1; }
    return t('common.bytes', { n: (i === 0 ? WHOLE : TENTHS).format(n), unit: UNITS[i] });
  }

  function when(ms) {
    return ms ? i18n.dateTime(ms) : t('common.never');
  }

  function duration(seconds) {
    const d = Math.floor(seconds / 86400);
    const h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    if (d) return t('common.duration.days', { d, h });
    if (h) return t('common.duration.hours', { h, m });
    return t('common.duration.minutes', { m, s: seconds % 60 });
  }

  // zxcvbn's feedback, by the codes the box sends beside its English text;
  // a code the catalog lacks shows the box's text.
  function advice(strength) {
    if (!strength) return [];
    const codes = [strength.warning_code].concat(strength.suggestion_codes || []);
    const texts = [strength.warning].concat(strength.suggestions || []);
    return texts.map((text, i) => {
      if (!text) return null;
      const key = 'strength.advice.' + codes[i];
      const translated = codes[i] ? t(key, { min: strength.min_length, max: strength.max_length }) : key;
      return translated === key ? text : translated;
    }).filter(Boolean);
  }

  function strengthAdvice(strength) {
    return advice(strength).join(' ');
  }

  // Live strength feedback from the box (zxcvbn) under a password field.
  function strengthMeter(inputId, outputId, endpoint, usernameOf) {
    const input = byId(inputId);
    const output = byId(outputId);
    if (!input || !output) return;
    let timer = null;
    let asked = 0;
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const password = input.value;
        const ticket = ++asked;
        if (!password) { output.replaceChildren(); return; }
        try {
          const s = await api('POST', endpoint, { password, username: usernameOf() });
          if (ticket !== asked) return;
          const tips = advice(s);
          const word = t('strength.score.' + s.score);
          output.replaceChildren(...[
            node('meter', { min: '0', max: '4', low: '2', high: '3', optimum: '4', value: String(s.score), 'aria-hidden': 'true' }),
            node('span', {}, t(s.acceptable ? 'strength.enough' : 'strength.not_enough', { word })),
            tips.length ? node('ul', {}, tips.map((a) => node('li', {}, a))) : null,
          ].filter(Boolean));
        } catch (e) {
          output.textContent = '';
        }
      }, 250);
    });
  }

  async function loadSession() {
    const session = await api('GET', '/api/session');
    csrf = session.csrf_token;
    return session;
  }

  function wireLogout() {
    const button = byId('logout');
    if (!button) return;
    button.addEventListener('click', async () => {
      try { await api('POST', '/api/logout'); } catch (e) { /* the session may be gone already */ }
      location.assign('/login');
    });
  }

  function showStep(hide, show, focusId) {
    byId(hide).hidden = true;
    byId(show).hidden = false;
    document.querySelectorAll('.steps li').forEach((li) => li.removeAttribute('aria-current'));
    const current = document.querySelector('.steps li[data-step="' + show.replace('step-', '') + '"]');
    if (current) current.setAttribute('aria-current', 'step');
    const target = byId(focusId);
    if (target) target.focus();
  }

  // ---- pages ----

  function setup() {
    let code = '';
    byId('code').focus();
    onSubmit('code-form', 'code-error', async () => {
      code = byId('code').value;
      await api('POST', '/api/setup/verify', { code });
      showStep('step-code', 'step-owner', 'username');
    });
    strengthMeter('password', 'password-strength', '/api/setup/strength', () => byId('username').value);
    onSubmit('owner-form', 'owner-error', async () => {
      const claimed = await api('POST', '/api/setup/claim', {
        code,
        username: byId('username').value.trim(),
        password: byId('password').value,
        password_confirm: byId('password2').value,
      });
      csrf = claimed.csrf_token;
      location.assign('/admin/welcome');
    });
  }

  async function welcome() {
    const session = await loadSession();
    const name = byId('box-name');
    name.value = session.box_name;
    name.focus();
    onSubmit('name-form', 'name-error', async () => {
      await api('PUT', '/api/admin/settings', { box_name: name.value });
      document.querySelectorAll('.box-name').forEach((el) => { el.textContent = name.value.trim(); });
      showStep('step-name', 'step-storage', 'storage-title');
      await storagePanel();
    });
  }

  // What a USB disk's state (from the box's storage service) means, and
  // the steps of a move: catalog keys storage.state.STATE and
  // storage.step.STATE; a state the catalog lacks shows as the box names it.
  function diskState(state) {
    const key = 'storage.state.' + state;
    const text = t(key);
    return text === key ? state : text;
  }

  function moveStep(m) {
    return t('storage.step.' + m.state, { percent: i18n.number(m.percent) });
  }

  function diskName(d) {
    return t('storage.disk.name', { model: d.model || t('storage.disk.usb'), size: bytes(d.size_bytes), device: d.device });
  }

  // Where the data lives, the USB disks the box found, and moving the data
  // to one of them with a progress bar: the setup's storage step and the
  // storage page.
  async function storagePanel() {
    let chosen = null;

    function showMove(m) {
      const failed = m.state === 'failed';
      const done = m.state === 'done';
      byId('move').hidden = false;
      byId('move-bar').hidden = failed;
      byId('move-bar').value = done ? 100 : m.percent;
      byId('move-login').hidden = !done;
      if (failed) {
        say('move-title', t('storage.move.failed'));
        say('move-text', t('storage.move.failed.text', { message: m.message }));
      } else if (done) {
        say('move-title', t('storage.move.done'));
        say('move-text', t('storage.move.done.text', { device: m.device }));
      } else {
        say('move-title', t('storage.move.to', { device: m.device }));
        say('move-text', moveStep(m));
      }
    }

    // The box restarted on the new disk: its sessions are gone with it.
    function restarted() {
      showMove({ state: 'done', device: '', percent: 100 });
      say('move-text', t('storage.move.restarted'));
    }

    function showDisks(a) {
      byId('storage-disks').hidden = false;
      byId('storage-no-disks').hidden = a.disks.length > 0;
      byId('disk-list').replaceChildren(...a.disks.map((d) => node('li', { class: 'disk', 'data-device': d.device },
        node('span', { class: 'what' }, t('storage.disk.line', { disk: diskName(d), state: diskState(d.state) })),
        d.state === 'in-use' ? null : node('button', {
          type: 'button', class: 'small secondary', 'aria-label': t('storage.disk.use.label', { disk: diskName(d) }),
          onclick: () => choose(d),
        }, t('storage.disk.use')))));
    }

    function choose(d) {
      chosen = d;
      const erase = d.state === 'other-box' || d.state === 'has-data';
      say('adopt-title', t('storage.adopt.to', { disk: diskName(d) }));
      say('adopt-summary', d.state === 'blank' || d.state === 'ours'
        ? t('storage.adopt.summary.' + d.state)
        : t('storage.adopt.summary.erase', { state: diskState(d.state) }));
      byId('erase-consent').hidden = !erase;
      byId('erase').checked = false;
      say('erase-label', t('storage.adopt.erase.disk', { disk: diskName(d) }));
      say('adopt-error', '');
      byId('adopt-form').hidden = false;
      byId('adopt-title').focus();
    }

    function render(s) {
      say('storage-dir', s.data_dir);
      say('storage-total', bytes(s.total_bytes));
      say('storage-free', bytes(s.available_bytes));
      say('storage-db', bytes(s.database_bytes));
      say('storage-error', [s.error, s.disks_error].filter(Boolean).join(' '));
      const a = s.appliance;
      if (!a) say('storage-disk', t('storage.disk.directory'));
      else if (a.data.kind === 'sd') say('storage-disk', t('storage.disk.sd', { device: a.data.device }));
      else say('storage-disk', t('storage.disk.usb.device', { device: a.data.device }));
      byId('storage-sd-warning').hidden = !(a && a.data.sd_wear_warning);
      if (s.move) showMove(s.move);
      const moving = s.move && s.move.state !== 'failed';
      byId('storage-disks').hidden = true;
      if (a && !moving) showDisks(a);
      if (moving) byId('adopt-form').hidden = true;
      return moving && s.move.state !== 'done';
    }

    async function follow() {
      let more = true;
      try {
        more = render(await api('GET', '/api/admin/storage', undefined, true));
      } catch (e) {
        if (e.code === 'not_logged_in') {
          restarted();
          return;
        }
        // Unreachable while it restarts on the new disk.
        say('move-text', t('storage.step.switching'));
      }
      if (more) setTimeout(follow, 1000);
    }

    byId('adopt-cancel').addEventListener('click', () => { byId('adopt-form').hidden = true; chosen = null; });
    onSubmit('adopt-form', 'adopt-error', async () => {
      if (!chosen) return;
      const erase = !byId('erase-consent').hidden;
      if (erase && !byId('erase').checked) {
        throw new Error(t('storage.adopt.consent'));
      }
      const started = await api('POST', '/api/admin/storage/adopt', { device: chosen.device, erase });
      byId('adopt-form').hidden = true;
      byId('storage-disks').hidden = true;
      showMove(started.move);
      byId('move-title').focus();
      setTimeout(follow, 1000);
    });

    try {
      if (render(await api('GET', '/api/admin/storage'))) setTimeout(follow, 1000);
    } catch (e) {
      say('storage-error', errorText(e));
    }
  }

  async function storagePage() {
    await loadSession();
    await storagePanel();
  }

  // Only paths on this box, never another site.
  function nextPath() {
    const next = new URLSearchParams(location.search).get('next');
    return next && next.startsWith('/') && !next.startsWith('//') ? next : null;
  }

  function login() {
    byId('username').focus();
    onSubmit('login-form', 'login-error', async () => {
      const result = await api('POST', '/api/login', {
        username: byId('username').value.trim(),
        password: byId('password').value,
      });
      const next = nextPath();
      location.assign(next && (result.admin || !next.startsWith('/admin')) ? next : result.home);
    });
  }

  // The time of the last refresh, to the second: it changes every 5 s.
  const SECONDS = new Intl.DateTimeFormat(i18n.lang, { timeStyle: 'medium' });

  async function status() {
    await loadSession();
    const refresh = async () => {
      try {
        const s = await api('GET', '/api/admin/status');
        say('st-name', s.box_name);
        say('st-version', s.version);
        say('st-uptime', duration(s.uptime_seconds));
        say('st-dir', s.storage.data_dir);
        say('st-quic', i18n.number(s.connections.quic));
        say('st-wss', i18n.number(s.connections.wss));
        say('st-ws', i18n.number(s.connections.ws));
        say('st-sessions', i18n.number(s.connections.sessions));
        say('st-rate', i18n.number(s.messages_per_second));
        say('st-stored', i18n.number(s.messages_stored));
        say('st-users', i18n.number(s.users));
        say('st-used', t('status.used.of', { used: bytes(s.storage.used_bytes), total: bytes(s.storage.total_bytes) }));
        say('st-free', bytes(s.storage.available_bytes));
        say('st-db', bytes(s.storage.database_bytes));
        const m = s.media;
        say('st-media', t('status.media.in', { count: m.contents, size: bytes(m.bytes), files: i18n.number(m.contents) }));
        say('st-media-retention', m.retention_days === 0 ? t('status.media.forever')
          : t(m.retention_source === 'setting' ? 'status.media.days' : 'status.media.days.config',
            { count: m.retention_days, days: i18n.number(m.retention_days) }));
        say('st-media-limits', t(m.user_quota_bytes ? 'status.media.limits.quota' : 'status.media.limits.no_quota', {
          file: bytes(m.max_file_bytes), quota: bytes(m.user_quota_bytes), reserve: bytes(m.reserve_bytes),
        }));
        say('st-media-pending', m.uploads_in_progress
          ? t('status.media.pending.some', { count: i18n.number(m.uploads_in_progress), size: bytes(m.pending_bytes) })
          : i18n.number(0));
        byId('st-media-users').tBodies[0].replaceChildren(...m.per_user.map((u) =>
          node('tr', {}, cell(t('status.media.user'), u.user), cell(t('status.media.uses'), bytes(u.bytes)))));
        pushStatus(s.push);
        const disks = s.storage.appliance;
        byId('st-sd-warning').hidden = !(disks && disks.data.sd_wear_warning);
        byId('st-disk-problem').hidden = !s.storage.disk_problem;
        say('st-disk-problem', s.storage.disk_problem || '');
        // A full disk or a failed writer: messages cannot be stored now.
        const w = s.writer;
        byId('st-writer').hidden = w.state === 'running';
        say('st-writer', w.state === 'storage_full'
          ? t('status.writer.full', { message: w.message || '' })
          : w.state === 'failed' ? t('status.writer.failed', { message: w.message || '' }) : '');
        say('st-fingerprint', s.identity.fingerprint);
        say('st-certificate', s.identity.certificate_sha256 || t('common.unknown'));
        // Protocol names and addresses: the same in every language.
        say('st-listeners', [].concat(
          s.listeners.https.map((a) => 'https ' + a),
          s.listeners.quic.map((a) => 'quic ' + a),
          s.listeners.http.map((a) => 'http ' + a),
        ).join(', '));
        say('updated', t('status.updated', { time: SECONDS.format(new Date()) }));
        say('status-error', '');
      } catch (e) {
        say('status-error', errorText(e));
      }
    };
    await refresh();
    setInterval(refresh, 5000);
  }

  // The status page's Push section (the same report as /api/admin/push).
  function pushStatus(p) {
    byId('st-push-off').hidden = p.enabled;
    const kinds = p.registrations;
    say('st-push-registrations', t('status.push.kinds', {
      webpush: i18n.number(kinds.webpush || 0), unifiedpush: i18n.number(kinds.unifiedpush || 0),
    }));
    say('st-push-sent', i18n.number(p.sent));
    say('st-push-failed', t('status.push.failed.counts', {
      failed: i18n.number(p.failed), dropped: i18n.number(p.dropped), removed: i18n.number(p.removed),
    }));
    say('st-push-queue', t('status.push.queue.of', {
      queue: i18n.number(p.queue), capacity: i18n.number(p.queue_capacity),
    }));
    say('st-push-last', p.last_success_at ? WHEN.format(new Date(p.last_success_at)) : t('status.push.never'));
    const label = t('status.push.last_error');
    byId('st-push-hosts').tBodies[0].replaceChildren(...p.hosts.map((h) => node('tr', {},
      cell(t('status.push.host'), h.host),
      cell(t('status.push.devices'), i18n.number(h.registrations)),
      // The error is the box's own words (English), with when it happened.
      cell(label, h.last_error ? WHEN.format(new Date(h.last_error_at)) + ' — ' + h.last_error : t('status.push.no_error')))));
  }

  // Dates of push successes and errors.
  const WHEN = new Intl.DateTimeFormat(i18n.lang, { dateStyle: 'short', timeStyle: 'medium' });

  function cell(label, ...content) {
    return node('td', { 'data-label': label }, ...content);
  }

  async function users() {
    const session = await loadSession();
    let resetFor = null;
    const notice = (text) => say('users-notice', text);
    const fail = (e) => say('users-error', errorText(e));

    async function showDevices(name) {
      const data = await api('GET', '/api/admin/users/' + encodeURIComponent(name) + '/devices');
      say('devices-title', t('users.devices.of', { user: name }));
      const list = byId('device-list');
      list.replaceChildren(...(data.devices.length ? data.devices.map((d) => node('li', { 'data-device': String(d.id) },
        t('users.device.since', { device: d.name, since: when(d.created_at) }) + ' ',
        node('button', {
          type: 'button', class: 'small danger', 'aria-label': t('users.device.revoke.label', { device: d.name, user: name }),
          onclick: async () => {
            try {
              await api('DELETE', '/api/admin/users/' + encodeURIComponent(name) + '/devices/' + d.id);
              notice(t('users.device.revoked', { device: d.name, user: name }));
              await showDevices(name);
              await load();
            } catch (e) { fail(e); }
          },
        }, t('users.device.revoke')))) : [node('li', {}, t('users.devices.none'))]));
      byId('devices').hidden = false;
      byId('devices-title').focus();
    }

    async function act(method, name, suffix, done) {
      say('users-error', '');
      try {
        await api(method, '/api/admin/users/' + encodeURIComponent(name) + suffix);
        notice(done);
        await load();
      } catch (e) { fail(e); }
    }

    async function load() {
      const data = await api('GET', '/api/admin/users');
      const rows = data.users.map((u) => {
        const mine = u.name === session.user;
        const user = { user: u.name };
        const actions = [
          node('button', { type: 'button', class: 'small secondary', 'aria-label': t('users.devices.of', user), onclick: () => showDevices(u.name).catch(fail) }, t('users.devices.button')),
          node('button', {
            type: 'button', class: 'small secondary', 'aria-label': t('users.reset.of', user),
            onclick: () => { resetFor = u.name; say('reset-title', t('users.reset.of', user)); byId('reset').hidden = false; byId('reset-password').focus(); },
          }, t('users.reset.button')),
        ];
        if (!u.owner && !mine) {
          actions.push(u.disabled
            ? node('button', { type: 'button', class: 'small secondary', 'aria-label': t('users.enable.label', user), onclick: () => act('POST', u.name, '/enable', t('users.enabled', user)) }, t('users.enable'))
            : node('button', { type: 'button', class: 'small secondary', 'aria-label': t('users.disable.label', user), onclick: () => act('POST', u.name, '/disable', t('users.disabled', user)) }, t('users.disable')));
          actions.push(node('button', {
            type: 'button', class: 'small danger', 'aria-label': t('users.remove.label', user),
            onclick: () => {
              if (window.confirm(t('users.remove.confirm', user))) {
                act('DELETE', u.name, '', t('users.removed', user));
              }
            },
          }, t('users.remove')));
        }
        // data-label: the column's name, shown before each cell on narrow screens.
        return node('tr', { 'data-user': u.name },
          cell(t('users.name'), u.name),
          cell(t('users.role'), t(u.owner ? 'users.role.owner' : (u.admin ? 'users.role.admin' : 'users.role.member'))),
          cell(t('users.devices'), i18n.number(u.devices)),
          cell(t('users.state'), t(u.disabled ? 'users.state.disabled' : 'users.state.active')),
          cell(t('users.actions'), actions));
      });
      document.querySelector('#users tbody').replaceChildren(...rows);
    }

    byId('devices-close').addEventListener('click', () => { byId('devices').hidden = true; });
    byId('reset-cancel').addEventListener('click', () => { byId('reset').hidden = true; });
    strengthMeter('reset-password', 'reset-strength', '/api/admin/strength', () => resetFor || '');
    onSubmit('reset-form', 'reset-error', async () => {
      await api('POST', '/api/admin/users/' + encodeURIComponent(resetFor) + '/password', {
        password: byId('reset-password').value,
        password_confirm: byId('reset-password2').value,
      });
      byId('reset-form').reset();
      byId('reset-strength').replaceChildren();
      byId('reset').hidden = true;
      notice(t('users.reset.done', { user: resetFor }));
    });
    strengthMeter('new-password', 'new-strength', '/api/admin/strength', () => byId('new-username').value);
    onSubmit('create-form', 'create-error', async () => {
      const name = byId('new-username').value.trim();
      await api('POST', '/api/admin/users', {
        username: name,
        password: byId('new-password').value,
        password_confirm: byId('new-password2').value,
        admin: byId('new-admin').checked,
      });
      byId('create-form').reset();
      byId('new-strength').replaceChildren();
      notice(t('users.created', { user: name }));
      await load();
    });
    await load().catch(fail);
  }

  // The invite form on the invites page and a member's page.
  function inviteForm(endpoint, afterCreate) {
    onSubmit('invite-form', 'invite-error', async () => {
      const hours = byId('invite-expiry').value;
      const invite = await api('POST', endpoint, {
        uses: Number(byId('invite-uses').value),
        expires_in_hours: hours ? Number(hours) : null,
      });
      byId('invite-qr').src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(invite.qr_svg);
      byId('invite-link').value = invite.join_link || invite.uri;
      byId('invite-pair').value = invite.uri;
      byId('new-invite').hidden = false;
      byId('new-invite-title').focus();
      if (afterCreate) await afterCreate();
    });
    byId('invite-copy').addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(byId('invite-link').value);
        say('copy-status', t('invite.new.copied'));
      } catch (e) {
        byId('invite-link').select();
        say('copy-status', t('invite.new.select'));
      }
    });
  }

  async function invites() {
    await loadSession();
    const fail = (e) => say('invites-error', errorText(e));
    async function load() {
      const data = await api('GET', '/api/admin/invites');
      byId('no-invites').hidden = data.invites.length > 0;
      byId('invites').hidden = data.invites.length === 0;
      document.querySelector('#invites tbody').replaceChildren(...data.invites.map((i) => node('tr', { 'data-invite': i.id },
        cell(t('invites.created'), when(i.created_at)),
        cell(t('invites.by'), i.created_by || t('invites.by.shell')),
        cell(t('invites.expires'), i.expired ? t('invites.expired') : when(i.expires_at)),
        cell(t('invites.uses'), i18n.number(i.uses_left)),
        cell(t('invites.actions'), node('button', {
          type: 'button', class: 'small danger', 'aria-label': t('invites.revoke.label', { created: when(i.created_at) }),
          onclick: async () => {
            try { await api('DELETE', '/api/admin/invites/' + i.id); await load(); } catch (e) { fail(e); }
          },
        }, t('invites.revoke'))))));
    }
    inviteForm('/api/admin/invites', () => load().catch(fail));
    await load().catch(fail);
  }

  async function settings() {
    await loadSession();
    certificateSection().catch((e) => say('cert-error', e.message || String(e)));
    const current = await api('GET', '/api/admin/settings');
    byId('settings-name').value = current.box_name;
    byId('settings-invite').checked = current.members_may_invite;
    onSubmit('settings-form', 'settings-error', async () => {
      say('settings-notice', '');
      const saved = await api('PUT', '/api/admin/settings', {
        box_name: byId('settings-name').value,
        members_may_invite: byId('settings-invite').checked,
      });
      document.querySelectorAll('.box-name').forEach((el) => { el.textContent = saved.box_name; });
      say('settings-notice', t('settings.saved'));
    });
  }

  // --- The certificate section of the settings page (cert.* keys) ---------
  // Shows the certificate browsers are shown, and lets an owner give one of
  // their own (pasted, read from files with FileReader, or as paths on the
  // data disk) or go back to the box's. Errors are translated by their code.
  const certT = (key, params) => (globalThis.imboxI18n ? globalThis.imboxI18n.t(key, params) : key);
  const CERT_ERRORS = ['no_certificate', 'bad_certificate', 'no_key', 'bad_key', 'key_mismatch',
    'certificate_not_yet_valid', 'certificate_expired', 'outside_data_dir', 'unreadable', 'file_too_large'];

  function certError(e) {
    const error = new Error(CERT_ERRORS.includes(e.code) ? certT('cert.error.' + e.code) : e.message);
    error.code = e.code;
    return error;
  }

  function certDay(seconds) {
    const ms = seconds * 1000;
    return globalThis.imboxI18n ? globalThis.imboxI18n.day(ms) : new Date(ms).toLocaleDateString();
  }

  function showCertificate(c) {
    say('cert-source', certT('cert.source.' + c.source));
    say('cert-subject', c.subject || certT('cert.none'));
    say('cert-issuer', c.issuer || certT('cert.none'));
    const names = (c.dns_names || []).concat(c.ip_addresses || []);
    say('cert-names', names.length ? names.join(', ') : certT('cert.none'));
    say('cert-valid', certT('cert.valid_range', { from: certDay(c.not_before), until: certDay(c.not_after) }));
    say('cert-sha256', c.sha256);
    const files = c.source === 'files' ? [c.chain_path, c.key_path].join(', ') : '';
    say('cert-files', files);
    document.querySelectorAll('.cert-files-row').forEach((el) => { el.hidden = !files; });
    const warning = byId('cert-warning');
    warning.hidden = !c.warning;
    say('cert-warning', c.warning ? certT('cert.warning.' + c.warning, { date: certDay(c.not_after) }) : '');
    const problem = byId('cert-problem');
    problem.hidden = !c.problem;
    say('cert-problem', c.problem ? certT('cert.problem', { reason: c.problem }) : '');
    byId('cert-use-box').hidden = c.source === 'box';
  }

  // Fills a textarea from a chosen file, so nobody has to paste a key.
  function certFileInto(inputId, textareaId) {
    byId(inputId).addEventListener('change', (event) => {
      const file = event.target.files && event.target.files[0];
      if (!file) return;
      const reader = new FileReader();
      reader.addEventListener('load', () => { byId(textareaId).value = String(reader.result); });
      reader.addEventListener('error', () => { say('cert-upload-error', certT('cert.error.read_file')); });
      reader.readAsText(file);
    });
  }

  async function certificateSection() {
    if (!byId('cert')) return;
    if (globalThis.imboxI18n) await globalThis.imboxI18n.ready;
    showCertificate(await api('GET', '/api/admin/certificate'));
    certFileInto('cert-chain-file', 'cert-chain');
    certFileInto('cert-key-file', 'cert-key');
    const change = async (body, notice) => {
      say('cert-notice', '');
      let report;
      try {
        report = await api('PUT', '/api/admin/certificate', body);
      } catch (e) {
        throw certError(e);
      }
      showCertificate(report);
      say('cert-notice', certT(notice));
    };
    onSubmit('cert-upload-form', 'cert-upload-error', async () => {
      const chain = byId('cert-chain').value.trim();
      const key = byId('cert-key').value.trim();
      if (!chain || !key) throw new Error(certT('cert.error.both_pem'));
      await change({ chain_pem: chain, key_pem: key }, 'cert.saved');
      byId('cert-key').value = '';
      byId('cert-key-file').value = '';
    });
    onSubmit('cert-files-form', 'cert-files-error', async () => {
      const chain = byId('cert-chain-path').value.trim();
      const key = byId('cert-key-path').value.trim();
      if (!chain || !key) throw new Error(certT('cert.error.both_paths'));
      await change({ chain_path: chain, key_path: key }, 'cert.saved');
    });
    byId('cert-use-box').addEventListener('click', async () => {
      if (!window.confirm(certT('cert.use_box_confirm'))) return;
      say('cert-error', '');
      say('cert-notice', '');
      try {
        showCertificate(await api('DELETE', '/api/admin/certificate'));
        say('cert-notice', certT('cert.back_to_box'));
      } catch (e) {
        say('cert-error', certError(e).message);
      }
    });
  }
  // --- end of the certificate section --------------------------------------

  async function member() {
    const session = await loadSession();
    say('member-name', session.user);
    if (session.may_invite) {
      byId('member-invite').hidden = false;
      inviteForm('/api/invites');
    }
  }

  // imboxd standby: follows the storage service by asking /health every
  // few seconds, and reloads only when the answer changes (the problem, or
  // imboxd itself answering): a timed reload would pull the page from under
  // someone reading it.
  async function standby() {
    const meta = document.querySelector('meta[name="imbox-standby-check"]');
    const seconds = Number(meta && meta.content) || 5;
    const ask = async () => {
      try {
        const response = await fetch('/health', { cache: 'no-store' });
        const body = await response.json().catch(() => null);
        return response.status + ' ' + (body && body.problem);
      } catch (e) {
        return null; // restarting: ask again
      }
    };
    const shown = await ask();
    setInterval(async () => {
      const now = await ask();
      if (now !== null && now !== shown) location.reload();
    }, seconds * 1000);
  }

  const pages = { setup, welcome, login, status, storage: storagePage, users, invites, settings, member, standby };

  // The page runs once its catalog is in and its marked elements are
  // translated, so that what it writes is not overwritten by them.
  document.addEventListener('DOMContentLoaded', () => {
    wireLogout();
    const run = pages[document.body.dataset.page];
    if (run) {
      i18n.ready.then(run).catch((e) => {
        const main = byId('main');
        if (main) main.prepend(node('p', { class: 'error', role: 'alert' }, errorText(e)));
      });
    }
  });
}());
