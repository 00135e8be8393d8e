// The web chat app's benchmark (issue 15, "Benchmark"): a real imboxd,
// seeded with one conversation of 10,000 messages and 49 groups (50
// conversations), and Debian's chromium with its CPU throttled 4× through
// the DevTools protocol. Each run is a new browser context (empty cache,
// the device already signed in) and measures:
//
//   first_load_bytes  bytes on the wire for the first load of /chat after
//                     sign-in, until the conversation list shows all 50
//                     (Network.loadingFinished encodedDataLength, the HTTP
//                     cache disabled; WebSocket frames counted apart);
//                     budget 150 KB
//   latest_page_ms    from the click on the 10,000-message conversation to
//                     its latest message on screen (performance.now() in the
//                     page, a MutationObserver); budget 100 ms. Split:
//                     latest_page_answer_ms, when the box's history answer
//                     (the largest WebSocket frame meanwhile) arrived
//   heap_bytes        the tab's JS heap (Runtime.getHeapUsage, after a
//                     garbage collection) once the 50 conversations have
//                     been opened one after another
//
// It prints the medians of RUNS runs (default 5) and writes every figure to
// bench/out/web-<time>.json. Not a test: nothing fails over budget, the
// summary says where each figure stands.
//
//   make bench-web   (a release imboxd: IMBOX_WEB_PROFILE=release node bench/web/run.mjs;
//                    RUNS=N for another number of runs)
//
// The browser side reads the chat app's DOM through the selectors in UI
// below (server/web/chat/).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { bin, eventually, launchBrowser, run, startBox } from '../../tests/web/box.mjs';
import { pipelineInPage } from './seed.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '..', 'out');
const RUNS = Number(process.env.RUNS || 5);
const MESSAGES = 10000;
const GROUPS = 49;
const GROUP_MESSAGES = 3;
const READER = { username: 'rita', password: 'plum harbour violin 28' };
const WRITER = { username: 'walt', password: 'cedar lantern river 75' };
const BUDGET = { first_load_bytes: 150 * 1000, latest_page_ms: 100 };

// How the chat app shows conversations and messages (server/web/chat/).
const UI = {
  // The conversation list's entries (data-chat: the name from the reader's side).
  conversation: 'button.chat-row[data-conversation]',
  // A stored message of the open conversation (its text in p.text).
  message: 'li.message[data-seq]',
};

const lastText = (name) => `${name}: the latest message`;
const groupName = (i) => `bench-g${String(i).padStart(2, '0')}`;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

async function addUser(box, { username, password }) {
  const config = ['--config', path.join(box.dir, 'empty.toml'), '--data-dir', box.data];
  const added = await run(bin('imboxd'), [...config, 'user', 'add', username], {}, `${password}\n`);
  if (added.code !== 0) throw new Error(`imboxd user add ${username} failed: ${added.stderr}`);
}

/** The writer sends 10,000 messages to the reader and makes 49 groups with a few messages each. */
async function seed(box, browser) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(`${box.https}/join`);
  const plan = [];
  for (let i = 1; i <= MESSAGES; i += 1) {
    const text = i === MESSAGES ? lastText(WRITER.username) : `message ${i} of ${MESSAGES}: ${'lorem ipsum dolor sit amet '.repeat(1 + (i % 4))}`;
    plan.push({ type: 'send', to: { user: READER.username }, id: `bench-${i}`, text });
  }
  const direct = await page.evaluate(pipelineInPage, { ...WRITER, plan });
  const groups = [];
  for (let g = 1; g <= GROUPS; g += 1) groups.push({ type: 'create_group', name: groupName(g), members: [READER.username] });
  await page.evaluate(pipelineInPage, { ...WRITER, plan: groups, window: 8 });
  const sends = [];
  for (let g = 1; g <= GROUPS; g += 1) {
    for (let m = 1; m <= GROUP_MESSAGES; m += 1) {
      const text = m === GROUP_MESSAGES ? lastText(groupName(g)) : `message ${m} in ${groupName(g)}`;
      sends.push({ type: 'send', to: { group: groupName(g) }, id: `bench-${g}-${m}`, text });
    }
  }
  await page.evaluate(pipelineInPage, { ...WRITER, plan: sends });
  // The reader's device, as sign-in stores it (localStorage imbox.device).
  const reader = await page.evaluate(pipelineInPage, { ...READER, plan: [] });
  await context.close();
  return {
    seconds: direct.ms / 1000,
    device: { token: reader.token, user: reader.user, device: reader.device, admin: reader.admin },
  };
}

/** One run in a fresh context; resolves with its figures. */
async function measure(box, browser, device) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  await context.addInitScript((stored) => {
    if (!localStorage.getItem('imbox.device')) localStorage.setItem('imbox.device', stored);
    // When each WebSocket frame arrived, and its size: splits the latest
    // page's time into the box's answer and the page's drawing.
    const Native = globalThis.WebSocket;
    globalThis.benchFrames = [];
    globalThis.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (event) => {
          globalThis.benchFrames.push([performance.now(), event.data.byteLength || event.data.size || event.data.length || 0]);
        });
      }
    };
  }, JSON.stringify(device));
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
  let httpBytes = 0;
  let wsBytes = 0;
  const files = [];
  const urls = new Map();
  cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url));
  cdp.on('Network.loadingFinished', (e) => {
    httpBytes += e.encodedDataLength;
    files.push([new URL(urls.get(e.requestId) || 'about:blank').pathname, e.encodedDataLength]);
  });
  cdp.on('Network.webSocketFrameReceived', (e) => { wsBytes += e.response.payloadData.length; });
  cdp.on('Network.webSocketFrameSent', (e) => { wsBytes += e.response.payloadData.length; });

  await page.goto(`${box.https}/chat`);
  await eventually('the 50 conversations to show', () => page.evaluate((selector) => document.querySelectorAll(selector).length, UI.conversation)
    .then((n) => n >= GROUPS + 1), 60000);
  await page.waitForLoadState('networkidle');
  // The app settles: its first answers (one short history per conversation
  // for the list's previews) are in and drawn when no frame has come for a
  // second; the click below then measures the conversation alone.
  await eventually('the app to settle', () => page.evaluate(() => {
    const last = globalThis.benchFrames.at(-1);
    return !last || performance.now() - last[0] > 1000;
  }), 60000);
  const firstLoadBytes = httpBytes;
  const firstLoadFiles = files.slice();

  // The click on the 10,000-message conversation, to its latest message drawn.
  const latest = await page.evaluate(({ ui, name, text }) => new Promise((resolve, reject) => {
    const entry = [...document.querySelectorAll(ui.conversation)].find((e) => e.dataset.chat === name);
    if (!entry) {
      reject(new Error(`no conversation ${name} in the list`));
      return;
    }
    const shown = () => [...document.querySelectorAll(ui.message)].some((m) => m.textContent.includes(text));
    let started;
    const observer = new MutationObserver(() => {
      if (shown()) {
        const drawn = performance.now();
        observer.disconnect();
        // The history answer: the largest frame between the click and the drawing.
        const frames = globalThis.benchFrames.filter(([at]) => at >= started && at <= drawn);
        const answer = frames.reduce((a, b) => (b[1] > a[1] ? b : a), [drawn, 0]);
        // Drawn means painted: the next frame after the message is in the DOM.
        requestAnimationFrame(() => resolve({ total: drawn - started, answer: answer[0] - started, answerBytes: answer[1] }));
      }
    });
    observer.observe(document.body, { childList: true, subtree: true, characterData: true });
    started = performance.now();
    entry.click();
  }), { ui: UI, name: WRITER.username, text: lastText(WRITER.username) });

  // The 50 conversations opened one after another, each to its latest message.
  const names = [WRITER.username, ...Array.from({ length: GROUPS }, (_, i) => groupName(i + 1))];
  for (const name of names) {
    await page.evaluate(({ ui, name: wanted }) => {
      const entry = [...document.querySelectorAll(ui.conversation)].find((e) => e.dataset.chat === wanted
        || e.dataset.chat === `#${wanted}`);
      if (!entry) throw new Error(`no conversation ${wanted} in the list`);
      entry.click();
    }, { ui: UI, name });
    await eventually(`${name} to open`, () => page.evaluate(({ ui, text }) => [...document.querySelectorAll(ui.message)]
      .some((m) => m.textContent.includes(text)), { ui: UI, text: lastText(name) }), 60000);
  }
  await cdp.send('HeapProfiler.collectGarbage');
  const heap = await cdp.send('Runtime.getHeapUsage');
  await context.close();
  return {
    first_load_bytes: firstLoadBytes,
    first_load_files: firstLoadFiles,
    websocket_bytes: wsBytes,
    latest_page_ms: latest.total,
    latest_page_answer_ms: latest.answer,
    latest_page_answer_bytes: latest.answerBytes,
    heap_bytes: heap.usedSize,
    heap_total_bytes: heap.totalSize,
  };
}

async function main() {
  const box = await startBox({ env: { IMBOX_LIMITS__SENDS_PER_SECOND: '100000' } });
  const browser = await launchBrowser();
  try {
    await addUser(box, READER);
    await addUser(box, WRITER);
    const seeded = await seed(box, browser);
    console.log(`seeded ${MESSAGES} messages in ${seeded.seconds.toFixed(1)} s and ${GROUPS} groups`);
    const runs = [];
    for (let i = 0; i < RUNS; i += 1) {
      const figures = await measure(box, browser, seeded.device);
      runs.push(figures);
      console.log(`run ${i + 1}/${RUNS}: ${figures.first_load_bytes} B first load, `
        + `${figures.latest_page_ms.toFixed(1)} ms to the latest page (answer after ${figures.latest_page_answer_ms.toFixed(1)} ms), `
        + `${(figures.heap_bytes / 1048576).toFixed(1)} MiB heap`);
    }
    const result = {
      date: new Date().toISOString(),
      chromium: browser.version(),
      cpu_throttling: 4,
      runs: RUNS,
      seeded: { messages: MESSAGES, conversations: GROUPS + 1, seconds: seeded.seconds },
      budget: BUDGET,
      median: {
        first_load_bytes: median(runs.map((r) => r.first_load_bytes)),
        websocket_bytes: median(runs.map((r) => r.websocket_bytes)),
        latest_page_ms: median(runs.map((r) => r.latest_page_ms)),
        latest_page_answer_ms: median(runs.map((r) => r.latest_page_answer_ms)),
        heap_bytes: median(runs.map((r) => r.heap_bytes)),
      },
      each: runs,
    };
    fs.mkdirSync(outDir, { recursive: true });
    const file = path.join(outDir, `web-${result.date.replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    const m = result.median;
    const verdict = (value, budget) => (value <= budget ? 'within budget' : 'OVER budget');
    console.log(`\nmedians of ${RUNS} runs (CPU throttled 4×), ${file}:`);
    console.log(`  first load of /chat   ${(m.first_load_bytes / 1000).toFixed(1)} kB (budget 150 kB: ${verdict(m.first_load_bytes, BUDGET.first_load_bytes)}); WebSocket ${(m.websocket_bytes / 1000).toFixed(1)} kB`);
    console.log(`  latest page of 10,000 ${m.latest_page_ms.toFixed(1)} ms (budget 100 ms: ${verdict(m.latest_page_ms, BUDGET.latest_page_ms)}); `
      + `the box's history answer came after ${m.latest_page_answer_ms.toFixed(1)} ms`);
    console.log(`  JS heap, 50 opened    ${(m.heap_bytes / 1048576).toFixed(1)} MiB`);
  } finally {
    await browser.close();
    await box.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
