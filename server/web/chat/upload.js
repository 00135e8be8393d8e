// One file to the box with tus (docs/API.md, "Attachments"), through
// tus-js-client (vendored as /assets/vendor/tus.min.js, loaded on the first
// upload so that a reader who never attaches anything never downloads it).
//
//   startUpload(file, { token, name, mediaType, onProgress }) →
//     { done: Promise<id>, cancel(): Promise }
//
// `done` resolves with the content's id (its SHA-256, from the
// `Imbox-Attachment` header of the box's last answer) or rejects with an
// UploadError whose `code` is the box's error code ("network" when the box
// never answered). tus-js-client keeps each upload's URL in localStorage
// (`storeFingerprintForResuming`), so the same file chosen again after a
// reload goes on from what the box already holds.

const TUS_SCRIPT = '/assets/vendor/tus.min.js';
const CHUNK_BYTES = 4 * 1024 * 1024;
// A phone that loses its network for a while keeps its upload: tus-js-client
// retries (from the box's offset) after these delays.
const RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10000, 20000];

let tusLoading = null;

/** tus-js-client, loaded once by a script element (the page's CSP allows only 'self' scripts). */
export function loadTus() {
  if (globalThis.tus) return Promise.resolve(globalThis.tus);
  if (!tusLoading) {
    tusLoading = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = TUS_SCRIPT;
      script.onload = () => (globalThis.tus ? resolve(globalThis.tus) : reject(new UploadError('network')));
      script.onerror = () => {
        tusLoading = null; // another try may work once the network is back
        script.remove();
        reject(new UploadError('network'));
      };
      document.head.append(script);
    });
  }
  return tusLoading;
}

/** Why an upload failed: `code` is the box's error code, or "network". */
export class UploadError extends Error {
  constructor(code, detail) {
    super(detail || code);
    this.name = 'UploadError';
    this.code = code;
  }
}

/** The box's error code in a failed tus request's answer (JSON `{error: {code}}`). */
function errorOf(error) {
  const response = error && error.originalResponse;
  if (!response) return new UploadError('network', String(error && error.message));
  const status = response.getStatus();
  let code = '';
  try {
    code = JSON.parse(response.getBody() || '{}').error.code || '';
  } catch (e) {
    code = '';
  }
  if (!code) {
    if (status === 401) code = 'bad_credentials';
    else if (status === 413) code = 'too_large';
    else if (status === 507) code = 'media_space_full';
    else if (status === 429) code = 'rate_limited';
    else if (status >= 500) code = 'unavailable';
    else code = 'internal';
  }
  return new UploadError(code, `HTTP ${status}`);
}

/** Starts uploading `file`; see the header comment. */
export function startUpload(file, { token, name, mediaType, onProgress }) {
  let upload = null;
  let cancelled = false;
  let id = null;
  let stop = null; // rejects `done` when the upload is cancelled
  const done = loadTus().then((tus) => new Promise((resolve, reject) => {
    stop = () => reject(new UploadError('cancelled'));
    if (cancelled) {
      reject(new UploadError('cancelled'));
      return;
    }
    upload = new tus.Upload(file, {
      // Absolute, so that tus-js-client resolves the box's Location against it.
      endpoint: new URL('/api/uploads', location.href).href,
      headers: { Authorization: `Bearer ${token}` },
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS_MS,
      metadata: { filename: name, filetype: mediaType },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onProgress: (sent, total) => { if (onProgress) onProgress(sent, total); },
      // The last PATCH's answer names the content; so does a HEAD of an
      // upload that was already complete when it was resumed.
      onAfterResponse: (_request, response) => {
        const named = response.getHeader('Imbox-Attachment');
        if (named) id = named.trim().toLowerCase();
      },
      onSuccess: () => (id ? resolve(id) : reject(new UploadError('internal', 'no Imbox-Attachment header'))),
      onError: (error) => reject(errorOf(error)),
    });
    upload.findPreviousUploads().then((previous) => {
      if (cancelled) return;
      if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    }, () => { if (!cancelled) upload.start(); });
  }));
  return {
    done,
    /** Stops the upload and tells the box to drop what it has (tus termination). */
    async cancel() {
      cancelled = true;
      if (stop) stop();
      if (upload) await upload.abort(true).catch(() => {});
    },
  };
}
