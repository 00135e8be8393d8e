// Attachments over HTTPS with a tus client nobody here wrote: tus-js-client
// (the reference client of the tus project) uploads to a real imboxd on
// loopback, in Node, with a device token as an app would; the download must
// give back the same bytes. The box's certificate is pinned in an agent of
// this file alone: nothing here turns verification off for other tests.

import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';

import tus from 'tus-js-client';

import {
  bin, eventually, run, startBox,
} from './box.mjs';

const USER = 'ursula';
const PASSWORD = 'copper meadow signal 41';
const MiB = 1024 * 1024;

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/**
 * An HTTPS agent that trusts the box's own certificate and nothing else: the
 * certificate names imbox.local, not 127.0.0.1, so the name check is replaced
 * by a comparison of the whole certificate's SHA-256 (a pin).
 */
function pinnedAgent(certificatePem) {
  const pinned = new X509Certificate(certificatePem).fingerprint256;
  return new https.Agent({
    ca: certificatePem,
    keepAlive: true,
    checkServerIdentity: (_host, certificate) => (certificate.fingerprint256 === pinned
      ? undefined
      : new Error(`the server's certificate ${certificate.fingerprint256} is not the box's ${pinned}`)),
  });
}

/** One HTTPS request through `agent`; resolves with status, headers and body. */
function request(agent, url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A body that gives the first `after` bytes of `bytes`, then nothing more
 * (the request stays open, as when a phone loses its network mid-upload),
 * and calls `onStall` once it has.
 */
function stallingBody(bytes, after, onStall) {
  let given = 0;
  let stalled = false;
  return new Readable({
    read() {
      if (given >= after) {
        if (!stalled) {
          stalled = true;
          onStall();
        }
        return;
      }
      const piece = bytes.subarray(given, Math.min(after, given + 64 * 1024));
      given += piece.length;
      this.push(piece);
    },
  });
}

/**
 * tus-js-client's own Node HTTP stack with the pinned agent, recording every
 * request it makes: method, the Upload-Offset it sent, status and the
 * Upload-Offset it got back. With `stall`, PATCH number `stall.patch` (from
 * 1) sends only `stall.after` bytes of its body, then `stall.onStall(req)`
 * runs with Node's request.
 */
function recordingStack(agent, log, stall) {
  const inner = new tus.DefaultHttpStack({ agent });
  let patches = 0;
  return {
    getName: () => 'recording NodeHttpStack',
    createRequest(method, url) {
      const req = inner.createRequest(method, url);
      const send = req.send.bind(req);
      req.send = async (body) => {
        const entry = { method, url, offset: req.getHeader('Upload-Offset') };
        log.push(entry);
        let sent = body;
        if (method === 'PATCH') {
          patches += 1;
          if (stall && patches === stall.patch) {
            sent = stallingBody(body, stall.after, () => stall.onStall(req.getUnderlyingObject()));
          }
        }
        const res = await send(sent);
        entry.status = res.getStatus();
        entry.responseOffset = res.getHeader('Upload-Offset');
        return res;
      };
      return req;
    },
  };
}

/** Runs a tus upload to its end; resolves with tus-js-client's success payload. */
function upload(file, options) {
  return new Promise((resolve, reject) => {
    const up = new tus.Upload(file, { ...options, onSuccess: resolve, onError: reject });
    up.start();
  });
}

describe('attachments over HTTPS with tus-js-client', () => {
  let box;
  let agent;
  let token;
  let uploads; // the tus endpoint
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'imbox-tus-'));

  before(async () => {
    box = await startBox();
    const config = ['--config', path.join(box.dir, 'empty.toml'), '--data-dir', box.data];
    const added = await run(bin('imboxd'), [...config, 'user', 'add', USER], {}, `${PASSWORD}\n`);
    assert.equal(added.code, 0, `imboxd user add failed: ${added.stderr}`);
    const identity = await run(bin('imboxd'), [...config, 'identity']);
    assert.equal(identity.code, 0, `imboxd identity failed: ${identity.stderr}`);
    const pin = identity.stdout.trim();
    // A device token, the way the CLI gets one: a protocol login over wss.
    const profile = path.join(scratch, 'profile');
    const login = await run(bin('imbox'), ['--server', `${box.https.replace('https:', 'wss:')}/ws`, '--pin', pin,
      '--profile', profile, 'login', USER], { IMBOX_PASSWORD: PASSWORD });
    assert.equal(login.code, 0, `imbox login failed: ${login.stderr}`);
    token = JSON.parse(fs.readFileSync(path.join(profile, 'profile.json'), 'utf8')).token;
    assert.ok(token, 'the profile holds no token');
    agent = pinnedAgent(fs.readFileSync(path.join(box.data, 'identity.crt'), 'utf8'));
    uploads = `${box.https}/api/uploads`;
  });

  after(async () => {
    if (agent) agent.destroy();
    if (box) await box.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  const auth = () => ({ Authorization: `Bearer ${token}` });
  const tusOptions = (log, extra = {}, stall = undefined) => ({
    endpoint: uploads,
    headers: auth(),
    httpStack: recordingStack(agent, log, stall),
    // A failure must show, not be retried away.
    retryDelays: null,
    ...extra,
  });

  it('announces tus 1.0.0 with the extensions of the contract', async () => {
    const res = await request(agent, uploads, { method: 'OPTIONS', headers: auth() });
    assert.equal(res.status, 204);
    assert.equal(res.headers['tus-resumable'], '1.0.0');
    assert.match(res.headers['tus-version'], /(^|,)\s*1\.0\.0\s*(,|$)/);
    const extensions = res.headers['tus-extension'].split(',').map((e) => e.trim());
    for (const e of ['creation', 'creation-with-upload', 'expiration', 'termination']) {
      assert.ok(extensions.includes(e), `Tus-Extension lacks ${e}: ${res.headers['tus-extension']}`);
    }
    assert.ok(Number(res.headers['tus-max-size']) >= 8 * MiB, `Tus-Max-Size ${res.headers['tus-max-size']}`);
  });

  it('refuses an upload without a valid token, with a JSON error', async () => {
    const log = [];
    const refused = await upload(randomBytes(1024), tusOptions(log, { headers: { Authorization: 'Bearer nope' } }))
      .then(() => null, (error) => error);
    assert.ok(refused, 'the upload with a wrong token succeeded');
    assert.equal(refused.originalResponse?.getStatus(), 401, `${refused}`);
    assert.equal(JSON.parse(refused.originalResponse.getBody()).error.code, 'bad_credentials');
  });

  it('uploads a file in one PATCH and downloads the same bytes', async () => {
    const file = randomBytes(6 * MiB + 123);
    const id = sha256(file);
    const log = [];
    let up;
    const done = await new Promise((resolve, reject) => {
      up = new tus.Upload(file, {
        ...tusOptions(log),
        metadata: { filename: 'holiday.bin', filetype: 'application/octet-stream' },
        onSuccess: resolve,
        onError: reject,
      });
      up.start();
    });
    assert.deepEqual(log.map((r) => `${r.method} ${r.status}`), ['POST 201', 'PATCH 204']);
    assert.equal(done.lastResponse.getHeader('Imbox-Attachment'), id, 'the completing PATCH names the attachment');
    assert.match(up.url, /\/api\/uploads\/[^/]+$/);

    const head = await request(agent, up.url, { method: 'HEAD', headers: { ...auth(), 'Tus-Resumable': '1.0.0' } });
    assert.equal(head.status, 200);
    assert.equal(head.headers['imbox-attachment'], id);
    assert.equal(Number(head.headers['upload-offset']), file.length);
    assert.equal(Number(head.headers['upload-length']), file.length);
    assert.equal(head.headers['cache-control'], 'no-store');

    const url = `${box.https}/api/attachments/${id}`;
    const got = await request(agent, url, { headers: auth() });
    assert.equal(got.status, 200);
    assert.equal(got.body.length, file.length);
    assert.equal(sha256(got.body), id, 'the download is not the uploaded content');
    assert.equal(got.headers['accept-ranges'], 'bytes');
    assert.equal(got.headers.etag, `"${id}"`);

    const part = await request(agent, url, { headers: { ...auth(), Range: 'bytes=1000-1999' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 1000-1999/${file.length}`);
    assert.ok(part.body.equals(file.subarray(1000, 2000)), 'the range is not those bytes of the file');

    const stranger = await request(agent, url);
    assert.equal(stranger.status, 401, 'a download without a token');
  });

  it('resumes an upload cut in the middle of a PATCH from the offset the box kept', async (t) => {
    const file = randomBytes(12 * MiB + 7);
    const id = sha256(file);
    const chunkSize = 4 * MiB;
    const urlStorage = new tus.FileUrlStorage(path.join(scratch, 'tus-urls.json'));
    const options = (log, stall) => tusOptions(log, {
      chunkSize,
      urlStorage,
      metadata: { filename: 'film.bin', filetype: 'video/mp4' },
    }, stall);

    // First attempt: the first PATCH (4 MiB) completes, answered 204, so
    // durable; the second sends 2 of its 4 MiB and stalls; once Node has
    // handed those bytes to the kernel, the upload is aborted, which cuts
    // the connection in the middle of that PATCH's body.
    const first = [];
    const cutAt = chunkSize + 2 * MiB;
    let cut;
    const aborted = new Promise((resolve, reject) => {
      const stall = {
        patch: 2,
        after: 2 * MiB,
        onStall: (req) => {
          eventually('the stalled PATCH to leave Node', () => req.writableLength === 0
            && (!req.socket || req.socket.writableLength === 0), 10000)
            .then(() => cut.abort())
            .then(resolve, reject);
        },
      };
      cut = new tus.Upload(file, {
        ...options(first, stall),
        onSuccess: () => reject(new Error('the upload finished before it was cut')),
        onError: reject,
      });
      cut.start();
    });
    await aborted;
    assert.equal(first.filter((r) => r.method === 'POST').length, 1);
    const patched = first.filter((r) => r.method === 'PATCH' && r.status === 204);
    assert.equal(patched.length, 1, `PATCHes before the cut: ${JSON.stringify(first)}`);
    const acknowledged = Number(patched[0].responseOffset);
    assert.equal(acknowledged, chunkSize);

    // The box keeps what it received of the cut PATCH, once it has seen
    // the connection end.
    const head = await eventually('the box to keep part of the cut PATCH', async () => {
      const res = await request(agent, cut.url, { method: 'HEAD', headers: { ...auth(), 'Tus-Resumable': '1.0.0' } });
      assert.equal(res.status, 200);
      return Number(res.headers['upload-offset']) > acknowledged ? res : null;
    }, 10000);
    const kept = Number(head.headers['upload-offset']);
    assert.ok(kept <= cutAt, `the box kept ${kept} bytes of an upload cut after ${cutAt}`);
    assert.equal(head.headers['imbox-attachment'], undefined, 'an incomplete upload has no attachment id');

    // Second attempt: a new Upload finds the first in its URL storage and
    // goes on from the box's offset (HEAD, then PATCH from there), with no
    // new POST. (Should the box still hold the cut PATCH, it answers 423,
    // which tus-js-client retries, as apps would.)
    const second = [];
    let settle;
    const finished = new Promise((resolve, reject) => { settle = { resolve, reject }; });
    const resumed = new tus.Upload(file, {
      ...options(second),
      retryDelays: [100, 300, 1000],
      onSuccess: (payload) => settle.resolve(payload),
      onError: (error) => settle.reject(error),
    });
    const previous = await resumed.findPreviousUploads();
    assert.equal(previous.length, 1, 'tus-js-client did not keep the cut upload');
    resumed.resumeFromPreviousUpload(previous[0]);
    resumed.start();
    const done = await finished;
    const trace = JSON.stringify(second.map(({ method, offset, status, responseOffset }) => ({
      method, offset, status, responseOffset,
    })));
    assert.equal(resumed.url, cut.url, 'the resumed upload is another upload');
    assert.equal(second[0].method, 'HEAD', `resuming did not start by asking the box: ${trace}`);
    assert.equal(second.filter((r) => r.method === 'POST').length, 0, `resuming created a new upload: ${trace}`);
    const firstPatch = second.findIndex((r) => r.method === 'PATCH' && r.status === 204);
    const asked = second.slice(0, firstPatch).filter((r) => r.method === 'HEAD').pop();
    const resumeOffset = Number(asked.responseOffset);
    assert.ok(resumeOffset >= kept, `HEAD said ${resumeOffset} on resuming, ${kept} just after the cut`);
    assert.equal(Number(second[firstPatch].offset), resumeOffset,
      `the first PATCH did not start at the box's offset: ${trace}`);
    const resumedPatches = second.filter((r) => r.method === 'PATCH' && r.status === 204);
    assert.equal(resumedPatches.length, Math.ceil((file.length - resumeOffset) / chunkSize),
      `the resumed upload sent more than what was missing: ${trace}`);
    assert.equal(done.lastResponse.getHeader('Imbox-Attachment'), id);
    t.diagnostic(`cut after ${cutAt} bytes sent (${acknowledged} acknowledged); the box kept ${kept}; `
      + `resumed from ${resumeOffset} with ${resumedPatches.length} PATCHes: ${trace}`);

    const got = await request(agent, `${box.https}/api/attachments/${id}`, { headers: auth() });
    assert.equal(got.status, 200);
    assert.equal(sha256(got.body), id, 'the resumed upload does not download as the file');
  });

  it('terminates an upload when tus-js-client aborts with termination', async () => {
    const file = randomBytes(3 * MiB);
    const log = [];
    let up;
    let terminating = false;
    await new Promise((resolve, reject) => {
      up = new tus.Upload(file, {
        ...tusOptions(log),
        chunkSize: MiB,
        onChunkComplete: () => {
          if (terminating) return;
          terminating = true;
          up.abort(true).then(resolve, reject);
        },
        onSuccess: () => reject(new Error('the upload finished before it was terminated')),
        onError: reject,
      });
      up.start();
    });
    assert.ok(log.some((r) => r.method === 'DELETE' && r.status === 204), JSON.stringify(log));
    const head = await request(agent, up.url, { method: 'HEAD', headers: { ...auth(), 'Tus-Resumable': '1.0.0' } });
    assert.equal(head.status, 404, 'a terminated upload is still there');
  });
});
