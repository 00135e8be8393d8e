// What the sender's browser learns about a file before it is sent: the box
// never decodes media (docs/PROTOCOL.md, "Attachments"), so a picture's size
// and its tiny preview come from here, inside the message.
//
//   describe(file) → Promise<{ width?, height?, duration_ms?, thumbnail? }>
//
// Every field is optional: a file the browser cannot decode is still sent,
// only without them. The thumbnail obeys the server's rule
// (protocol/src/attachment.rs): a data: URL of JPEG, PNG or WebP holding at
// most 1,024 bytes of image; when no attempt fits, there is none.

export const MAX_THUMBNAIL_BYTES = 1024;

// Longest sides and qualities tried in order: the first that fits wins, so
// the preview is as sharp as 1 KiB allows.
const THUMBNAIL_ATTEMPTS = [
  [32, 0.7], [32, 0.5], [28, 0.5], [24, 0.5], [20, 0.4], [16, 0.4], [12, 0.3],
];
const THUMBNAIL_TYPES = ['image/webp', 'image/jpeg'];

// A browser that never answers about a broken file must not hold the
// upload's description forever.
const METADATA_WAIT_MS = 10000;

/** Whether the box serves this media type inline as an image (not SVG: the box sends that as a download). */
export function isPicture(mediaType) {
  const essence = String(mediaType || '').split(';')[0].trim().toLowerCase();
  return essence.startsWith('image/') && essence !== 'image/svg+xml';
}

/** The top-level type (`audio`, `video`, `image`) of a media type. */
export function kindOf(mediaType) {
  const essence = String(mediaType || '').split(';')[0].trim().toLowerCase();
  if (isPicture(essence)) return 'image';
  if (essence.startsWith('audio/')) return 'audio';
  if (essence.startsWith('video/')) return 'video';
  return 'file';
}

function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function canvasBlob(canvas, type, quality) {
  return new Promise((resolve) => { canvas.toBlob(resolve, type, quality); });
}

/**
 * A data: URL of at most 1 KiB of image drawn from `source` (an ImageBitmap
 * or a video element) of `width` × `height`, or undefined.
 */
export async function thumbnailOf(source, width, height) {
  if (!(width > 0 && height > 0)) return undefined;
  for (const [side, quality] of THUMBNAIL_ATTEMPTS) {
    const scale = Math.min(1, side / Math.max(width, height));
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    const context = canvas.getContext('2d');
    if (!context) return undefined;
    // JPEG has no transparency: a transparent picture gets white behind it,
    // not black.
    context.fillStyle = '#fff';
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.drawImage(source, 0, 0, canvas.width, canvas.height);
    for (const type of THUMBNAIL_TYPES) {
      const blob = await canvasBlob(canvas, type, quality);
      // toBlob falls back to PNG for a type it cannot write: check what came.
      if (blob && THUMBNAIL_TYPES.includes(blob.type) && blob.size > 0 && blob.size <= MAX_THUMBNAIL_BYTES) {
        return blobToDataUrl(blob);
      }
    }
  }
  return undefined;
}

async function describeImage(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (e) {
    return {}; // not a picture this browser reads (HEIC, say): sent as it is
  }
  try {
    const { width, height } = bitmap;
    const description = { width, height };
    const thumbnail = await thumbnailOf(bitmap, width, height);
    if (thumbnail) description.thumbnail = thumbnail;
    return description;
  } finally {
    bitmap.close();
  }
}

/** Resolves once `element` has fired `event` (true), or false on error or after a while. */
function once(element, event) {
  return new Promise((resolve) => {
    let timer;
    const done = (value) => {
      clearTimeout(timer);
      element.removeEventListener(event, ok);
      element.removeEventListener('error', failed);
      resolve(value);
    };
    const ok = () => done(true);
    const failed = () => done(false);
    timer = setTimeout(failed, METADATA_WAIT_MS);
    element.addEventListener(event, ok);
    element.addEventListener('error', failed);
  });
}

const durationMs = (seconds) => (Number.isFinite(seconds) && seconds > 0 ? Math.max(1, Math.round(seconds * 1000)) : undefined);

async function describeMedia(file, kind) {
  const element = document.createElement(kind);
  element.preload = 'metadata';
  element.muted = true;
  const url = URL.createObjectURL(file);
  try {
    element.src = url;
    if (!(await once(element, 'loadedmetadata'))) return {};
    const description = {};
    // Recordings made by MediaRecorder often say Infinity here: no duration
    // then, rather than a wrong one.
    const duration = durationMs(element.duration);
    if (duration) description.duration_ms = duration;
    if (kind === 'video' && element.videoWidth > 0 && element.videoHeight > 0) {
      description.width = element.videoWidth;
      description.height = element.videoHeight;
      // The first frame, as the poster of the message.
      element.currentTime = Math.min(0.1, (element.duration || 0) / 2 || 0);
      if (await once(element, 'seeked')) {
        const thumbnail = await thumbnailOf(element, element.videoWidth, element.videoHeight);
        if (thumbnail) description.thumbnail = thumbnail;
      }
    }
    return description;
  } finally {
    element.removeAttribute('src');
    element.load();
    URL.revokeObjectURL(url);
  }
}

/** Width, height, duration and thumbnail of `file`, as far as this browser can tell. */
export async function describe(file) {
  const kind = kindOf(file.type);
  if (kind === 'image') return describeImage(file);
  if (kind === 'audio' || kind === 'video') return describeMedia(file, kind);
  return {};
}
