// Reading the user's stream: after every authentication, `sync` from the
// device's cursor until `more: false` (only then does the box push `entry`
// events), then live entries. Entries at or below the last processed
// position are ignored: a sync page and a push can overlap. The cursor is
// acknowledged to the box (so the next session starts there) and kept in
// localStorage too (so a reload that races the ack still skips what it saw).

const PAGE = 200;
const ACK_DELAY_MS = 300;

export class StreamReader {
  /** `apply(item, { live })` handles one entry's item; `resync()` reloads what may be missing. */
  constructor(connection, device, { apply, resync, caughtUp }) {
    this.connection = connection;
    this.key = `imbox.cursor.${device.user}.${device.device}`;
    this.apply = apply;
    this.resync = resync;
    this.caughtUp = caughtUp;
    this.position = Number(localStorage.getItem(this.key) || 0);
    this.live = false;
    this.acked = 0;
    this.ackTimer = null;
    connection.addEventListener('ready', (e) => this.catchUp(e.detail));
    connection.addEventListener('offline', () => { this.live = false; });
    connection.addEventListener('event', (e) => {
      if (e.detail.type === 'entry' && this.live) this.take(e.detail.entry, true);
    });
  }

  async catchUp(authenticated) {
    this.live = false;
    this.position = Math.max(this.position, Number(authenticated.cursor || 0));
    try {
      let since = this.position;
      for (;;) {
        const page = await this.connection.request({ type: 'sync', since, limit: PAGE });
        if (page.resync) await this.resync();
        for (const entry of page.entries || []) this.take(entry, false);
        since = Math.max(since, Number(page.next || 0));
        this.position = Math.max(this.position, since);
        this.scheduleAck();
        if (!page.more) break;
      }
      // Entries pushed while the last page was on its way are not lost:
      // the box pushes only what comes after that page.
      this.live = true;
      this.caughtUp();
    } catch (e) {
      // The socket went away mid-sync: the next session starts again.
    }
  }

  take(entry, live) {
    const position = Number(entry.position);
    if (position <= this.position) return;
    this.position = position;
    this.apply(entry.item, { live });
    this.scheduleAck();
  }

  scheduleAck() {
    localStorage.setItem(this.key, String(this.position));
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      const position = this.position;
      if (position <= this.acked) return;
      this.connection.request({ type: 'ack', position }).then(() => { this.acked = Math.max(this.acked, position); }, () => {});
    }, ACK_DELAY_MS);
  }
}
