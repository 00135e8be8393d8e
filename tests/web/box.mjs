// Helpers of the browser tests: a real imboxd on loopback (the binary from
// target/, a temporary data directory, free ports, an empty configuration
// file) and Debian's chromium driven by Playwright.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '..', '..');
export const out = process.env.IMBOX_WEB_OUT || path.join(here, 'out');
const profile = process.env.IMBOX_WEB_PROFILE || 'debug';
// Where cargo put the binaries: make passes CARGO_TARGET_DIR on when it is set.
const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');

/** A workspace binary, built by `cargo build --workspace --bins`. */
export function bin(name) {
  const file = path.join(targetDir, profile, name);
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is missing: run \`cargo build --workspace --bins\` first (make test does)`);
  }
  return file;
}

/** A TCP port on 127.0.0.1 free at the moment of asking. */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

function connects(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** Polls `check` until it returns something truthy, or fails after `ms`. */
export async function eventually(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The environment of a child process: PATH and what is given, nothing else. */
export function cleanEnv(extra) {
  return { PATH: process.env.PATH || '/usr/bin:/bin', ...extra };
}

/**
 * Starts imboxd; resolves once its HTTPS port answers and the claim file
 * exists. `run` is where the appliance's storage service would write the disk
 * list and the progress of a move (/run/imbox on the image). `env` adds
 * IMBOX_ settings (the benchmark lifts the send rate, say).
 */
export async function startBox({ env = {} } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imbox-web-'));
  const data = path.join(dir, 'data');
  const runDir = path.join(dir, 'run');
  const config = path.join(dir, 'empty.toml');
  fs.writeFileSync(config, '');
  const [http, https, quic] = [await freeTcpPort(), await freeTcpPort(), await freeUdpPort()];
  const claimFile = path.join(data, 'imbox-claim.txt');
  let child = null;
  let log = '';

  // imboxd on the same data directory and ports; resolves once HTTPS answers
  // (and, before the box is claimed, the claim file exists).
  async function launch() {
    child = spawn(bin('imboxd'), ['--config', config, '--data-dir', data, 'run', '--listen', `127.0.0.1:${http}`], {
      env: cleanEnv({
        IMBOX_HTTPS__LISTEN: `127.0.0.1:${https}`,
        IMBOX_QUIC__LISTEN: `127.0.0.1:${quic}`,
        IMBOX_LOG__LEVEL: 'info',
        IMBOX_SETUP__STORAGE_STATUS: path.join(runDir, 'storage.json'),
        IMBOX_SETUP__STORAGE_PROGRESS: path.join(runDir, 'storage-progress'),
        ...env,
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const started = child;
    child.stdout.on('data', (chunk) => { log += chunk; });
    child.stderr.on('data', (chunk) => { log += chunk; });
    const firstRun = !fs.existsSync(path.join(data, 'identity.crt'));
    await eventually('imboxd to start', async () => {
      if (started.exitCode !== null) throw new Error(`imboxd exited early:\n${log}`);
      return (!firstRun || fs.existsSync(claimFile)) && (await connects(https));
    });
  }

  async function halt() {
    if (child.exitCode === null) {
      const stopping = child;
      stopping.kill('SIGTERM');
      await eventually('imboxd to stop', () => stopping.exitCode !== null, 15000).catch(() => stopping.kill('SIGKILL'));
    }
  }

  await launch();
  return {
    get child() { return child; },
    dir,
    data,
    runDir,
    claimFile,
    http: `http://127.0.0.1:${http}`,
    https: `https://127.0.0.1:${https}`,
    log: () => log,
    /** Stops imboxd, runs `meanwhile`, and starts imboxd again on the same data. */
    async restart(meanwhile) {
      await halt();
      if (meanwhile) await meanwhile();
      await launch();
    },
    async stop() {
      await halt();
      fs.mkdirSync(out, { recursive: true });
      fs.writeFileSync(path.join(out, 'imboxd.log'), log);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The claim code in the claim file. */
export function claimCode(file) {
  const line = fs.readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith('Claim code: '));
  if (!line) throw new Error(`no claim code in ${file}`);
  return line.slice('Claim code: '.length).trim();
}

/** SHA-256 of the box certificate, as colon-separated hex (browsers show this). */
export function certificateDigest(data) {
  const pem = fs.readFileSync(path.join(data, 'identity.crt'), 'utf8');
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g).join(':');
}

/**
 * Debian's chromium, headless. `trustEveryCertificate` makes it take the box's
 * self-signed certificate as trusted, which service workers (and so the
 * offline shell and Web Push) need; otherwise it only skips the warning, as a
 * person who clicked through does.
 */
export function launchBrowser({ trustEveryCertificate = false } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', ...(trustEveryCertificate ? ['--ignore-certificate-errors'] : [])],
  });
}

/** A phone-sized browser context that accepts the self-signed certificate. */
export function phone(browser) {
  return browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 360, height: 740 }, deviceScaleFactor: 1 });
}

/**
 * Runs a program to its end; resolves with its exit code and output. `input`,
 * when given, is written to its standard input (a password, say).
 */
export function run(program, args, env, input) {
  return new Promise((resolve, reject) => {
    const stdin = input === undefined ? 'ignore' : 'pipe';
    const child = spawn(program, args, { env: cleanEnv(env), stdio: [stdin, 'pipe', 'pipe'] });
    if (input !== undefined) child.stdin.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => { stdout += chunk; });
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Checks that the page needs no horizontal scrolling at its width, and saves a screenshot. */
export async function fitsAndShoot(page, name) {
  fs.mkdirSync(out, { recursive: true });
  await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: true });
  return page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
  }));
}
