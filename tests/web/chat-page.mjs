// What the browser tests do in the chat app, as a person would: sign in,
// go back to the list on a phone, open a conversation. Shared by the chat
// and attachment tests so that a change of the app's screens is made once.

/** Signs `user` in at /chat and waits until the session is ready. */
export async function signIn(page, https, user, password) {
  await page.goto(`${https}/chat`);
  await page.fill('#signin-username', user);
  await page.fill('#signin-password', password);
  await page.click('#signin-form button[type="submit"]');
  await page.waitForSelector('#app');
  await page.waitForFunction(() => globalThis.imboxChat && globalThis.imboxChat.connection.ready);
}

/** On a phone the list and a conversation are two screens: back to the list. */
export async function toList(page) {
  for (let i = 0; i < 3 && await page.isVisible('#back'); i += 1) await page.click('#back');
}

/** Opens the conversation named `name` from the list, or starts a direct chat with that user. */
export async function openChat(page, name) {
  await toList(page);
  const existing = page.locator(`#conversations button[data-chat="${name}"]`);
  if (await existing.count()) await existing.click();
  else {
    await page.fill('#new-chat-user', name);
    await page.press('#new-chat-user', 'Enter');
  }
  await page.waitForFunction((n) => document.getElementById('conversation-title')?.textContent === n, name);
}
