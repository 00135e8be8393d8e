// Chromium for the attachments' tests: box.mjs's browser, with a fake
// microphone (a tone) that needs no permission prompt, so that voice notes
// can be recorded headless.

import { chromium } from 'playwright-core';

export function launchWithMicrophone() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
  });
}
