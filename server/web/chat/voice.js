// Voice notes: the microphone recorded with MediaRecorder, in Opus where the
// browser writes it.
//
//   voiceSupported() → bool
//   startRecording() → Promise<{ elapsedMs(), stop(): Promise<{blob, durationMs}>, cancel() }>
//
// The duration is measured here, from the recorder's start to its stop:
// Chromium's WebM recordings carry no duration in their header (a media
// element reads Infinity), and the message needs one.

// In order of preference: Opus in WebM (Chromium, Firefox), Opus in Ogg,
// then AAC in MP4 (Safari).
const TYPES = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/mp4'];

/** Whether this browser can record a voice note at all. */
export function voiceSupported() {
  return Boolean(globalThis.MediaRecorder && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

/** The file extension for a recording's media type. */
export function extensionOf(mediaType) {
  const essence = String(mediaType).split(';')[0].trim();
  if (essence === 'audio/ogg') return 'ogg';
  if (essence === 'audio/mp4') return 'm4a';
  return 'webm';
}

/**
 * Asks for the microphone and starts recording. Rejects with the browser's
 * DOMException (NotAllowedError, NotFoundError …) when it cannot.
 */
export async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const mimeType = TYPES.find((type) => MediaRecorder.isTypeSupported(type));
  let recorder;
  try {
    recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
  } catch (error) {
    stream.getTracks().forEach((track) => track.stop());
    throw error;
  }
  const chunks = [];
  recorder.addEventListener('dataavailable', (event) => {
    if (event.data && event.data.size > 0) chunks.push(event.data);
  });
  const started = await new Promise((resolve, reject) => {
    recorder.addEventListener('start', () => resolve(performance.now()), { once: true });
    recorder.addEventListener('error', (event) => reject(event.error || new Error('MediaRecorder')), { once: true });
    recorder.start();
  });
  let stopped = null;
  const release = () => stream.getTracks().forEach((track) => track.stop());

  function finish() {
    if (!stopped) {
      stopped = new Promise((resolve) => {
        recorder.addEventListener('stop', () => {
          release();
          resolve(performance.now());
        }, { once: true });
        if (recorder.state !== 'inactive') recorder.stop();
      });
    }
    return stopped;
  }

  return {
    elapsedMs: () => performance.now() - started,
    async stop() {
      const ended = await finish();
      const type = recorder.mimeType || mimeType || 'audio/webm';
      return { blob: new Blob(chunks, { type }), durationMs: Math.max(1, Math.round(ended - started)) };
    },
    async cancel() {
      await finish();
      chunks.length = 0;
    },
  };
}
