"""The SDK's Python bindings against a real imboxd over QUIC with the box's
key pinned from a real invite's pairing URI.

Run by `make test-sdk` (which builds imboxd and the bindings first):
    PYTHONPATH=$CARGO_TARGET_DIR/bindings/python python3 ffi/tests/python/test_sdk.py [NAME...]
Each test prints its name and what it measured; any failure exits 1.
"""

import asyncio
import filecmp
import hashlib
import os
import shutil
import sys
import tempfile
import time
import traceback

import imbox

from box import Box, elapsed_ms

PASSWORD = "correct horse battery"
# Guards against a hang only: every wait below ends as soon as what it
# waits for happens.
WAIT = 30


async def paired(box, home, name):
    """A new account and device, paired from a fresh invite."""
    return await imbox.ImboxClient.pair(os.path.join(home, name), box.invite(), name, PASSWORD, f"{name}'s phone")


async def next_message(client):
    """The next Message event, skipping momentary ones (typing, presence,
    connection changes); returns (message, skipped events)."""
    skipped = []
    while True:
        event = await asyncio.wait_for(client.next_event(), WAIT)
        if isinstance(event, imbox.ImboxEvent.MESSAGE):
            return event.message, skipped
        skipped.append(event)


async def test_pair_send_receive(box, home):
    info = imbox.parse_pairing_uri(box.invite())
    assert info.has_invite and info.server_urls[0].startswith("quic://"), info
    alice = await paired(box, home, "alice")
    bob = await paired(box, home, "bob")
    session = await alice.connect()
    assert session.user == "alice" and session.server.startswith("quic://"), session
    sent = await alice.send_text("@bob", "hello bob")
    message, _ = await next_message(bob)
    assert (message.text, message._from, message.seq, message.id) == ("hello bob", "alice", sent.seq, sent.id)
    # A retry under the same client id stores nothing new.
    again = await alice.send_text("@bob", "hello bob", sent.id)
    assert again.duplicate and again.seq == sent.seq, again
    # Alice's own message is in her stream too (for her other devices).
    own, _ = await next_message(alice)
    assert own.id == sent.id
    conversations = await bob.conversations()
    assert [c.chat for c in conversations] == ["alice"] and conversations[0].unread == 1, conversations
    page = await bob.history("@alice")
    assert [m.text for m in page.messages] == ["hello bob"] and not page.more, page
    await bob.mark_read("@alice", sent.seq)
    receipt = None
    while receipt is None:
        event = await asyncio.wait_for(alice.next_event(), WAIT)
        if isinstance(event, imbox.ImboxEvent.RECEIPT):
            receipt = event
    assert (receipt.user, receipt.kind, receipt.seq) == ("bob", imbox.ReceiptKind.READ, sent.seq), receipt
    await bob.typing("@alice")
    while not isinstance(event := await asyncio.wait_for(alice.next_event(), WAIT), imbox.ImboxEvent.TYPING):
        pass
    assert event.user == "bob", event
    # A cancelled wait (an app's coroutine cancelled) lets go of the client:
    # requests and the next wait go on, and nothing is lost.
    waiting = asyncio.ensure_future(bob.next_event())
    await asyncio.sleep(0)
    waiting.cancel()
    await alice.send_text("@bob", "after a cancelled wait")
    message, _ = await next_message(bob)
    assert message.text == "after a cancelled wait", message
    await alice.close()
    await bob.close()


class Collector(imbox.EventListener):
    """A listener that hands events to the asyncio loop (it is called from
    the SDK's threads)."""

    def __init__(self, loop):
        self.loop = loop
        self.queue = asyncio.Queue()
        self.errors = []

    def on_event(self, event):
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def on_error(self, error):
        self.errors.append(error)

    async def next_message(self):
        while True:
            event = await asyncio.wait_for(self.queue.get(), WAIT)
            if isinstance(event, imbox.ImboxEvent.MESSAGE):
                return event.message


async def test_listener_and_groups(box, home):
    alice = await paired(box, home, "carol")
    bob = await paired(box, home, "dave")
    events = Collector(asyncio.get_running_loop())
    bob.set_listener(events)
    group = await alice.create_group("#crew", ["dave"])
    assert group.kind == imbox.ConversationKind.GROUP and group.chat == "#crew", group
    # Requests go through while the listener waits for events.
    for n in range(5):
        await alice.send_text("#crew", f"group message {n}")
    texts = [(await events.next_message()).text for _ in range(5)]
    assert texts == [f"group message {n}" for n in range(5)], texts
    assert (await bob.devices())[0].current
    bob.clear_listener()
    assert not events.errors, events.errors
    await alice.close()
    await bob.close()


class Progress(imbox.ProgressListener):
    def __init__(self):
        self.reports = []

    def on_progress(self, progress):
        self.reports.append(progress)


async def test_attachments(box, home):
    alice = await paired(box, home, "erin")
    bob = await paired(box, home, "frank")
    source = os.path.join(home, "photo.jpg")
    with open(source, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024 + 17))
    up = Progress()
    attachment = await alice.upload(source, up)
    size = os.path.getsize(source)
    with open(source, "rb") as f:
        assert attachment.id == hashlib.sha256(f.read()).hexdigest(), attachment
    assert (attachment.name, attachment.media_type, attachment.size) == ("photo.jpg", "image/jpeg", size)
    done = [p.done for p in up.reports]
    assert len(done) > 1 and done == sorted(done) and done[-1] == size, done
    await alice.send_attachments("@frank", "a photo", [attachment])
    message, _ = await next_message(bob)
    assert message.text == "a photo" and [a.id for a in message.attachments] == [attachment.id], message
    down = Progress()
    dest = os.path.join(home, "received.jpg")
    downloaded = await bob.download(attachment.id, dest, down)
    assert downloaded.size == size and filecmp.cmp(source, dest, shallow=False)
    assert down.reports and down.reports[-1].done == size
    try:
        await bob.download("0" * 64, os.path.join(home, "missing"), None)
        raise AssertionError("downloaded an attachment that does not exist")
    except imbox.ImboxError.NotFound:
        pass
    print(f"  {size} bytes up in {len(up.reports)} progress reports, down byte for byte")
    await alice.close()
    await bob.close()


async def test_network_change(box, home):
    alice = await paired(box, home, "grace")
    bob = await paired(box, home, "heidi")
    before = (await alice.connect()).local_address
    after = await alice.network_changed()
    assert after is not None and after != before, (before, after)
    assert await alice.local_address() == after
    # The session survived the move: the box pushes to the new address, and
    # no reconnection happened on the way.
    await bob.send_text("@grace", "after the move")
    message, skipped = await next_message(alice)
    assert message.text == "after the move", message
    reconnects = [e for e in skipped if isinstance(e, (imbox.ImboxEvent.CONNECTED, imbox.ImboxEvent.DISCONNECTED))]
    assert not reconnects, reconnects
    await alice.send_text("@heidi", "from the new address")
    reply, _ = await next_message(bob)
    if reply._from == "heidi":  # Bob's own message, in his stream too.
        reply, _ = await next_message(bob)
    assert reply.text == "from the new address", reply
    print(f"  local address {before} -> {after}, session kept")
    await alice.close()
    await bob.close()


async def test_suspend_resume(box, home):
    alice = await paired(box, home, "ivan")
    bob = await paired(box, home, "judy")
    await alice.connect()
    await bob.send_text("@ivan", "before")
    assert (await next_message(alice))[0].text == "before"
    await alice.suspend()
    try:
        await alice.send_text("@judy", "while suspended")
        raise AssertionError("a suspended client sent")
    except imbox.ImboxError.Suspended:
        pass
    for n in range(3):
        await bob.send_text("@ivan", f"while away {n}")
    started = time.monotonic()
    session = await alice.resume()
    resume_ms = elapsed_ms(started)
    # This process talked to the box before: the session resumed with 0-RTT.
    assert session.early_data == imbox.EarlyData.ACCEPTED, session
    got = [(await next_message(alice))[0].text for _ in range(3)]
    assert got == [f"while away {n}" for n in range(3)], got
    await alice.close()
    # Exactly once across restarts: a new client on the same profile gets
    # what came after, not the three again.
    await bob.send_text("@ivan", "after the restart")
    again = imbox.ImboxClient.open(alice.profile_dir())
    assert (await next_message(again))[0].text == "after the restart"
    print(f"  resume with 0-RTT in {resume_ms:.1f} ms; 3 messages from the suspension, each once")
    await again.close()
    await bob.close()


async def test_logout(box, home):
    alice = await paired(box, home, "mallory")
    await alice.connect()
    saved = os.path.join(home, "mallory-copy")
    shutil.copytree(alice.profile_dir(), saved)
    await alice.logout()
    assert not os.path.exists(os.path.join(alice.profile_dir(), "profile.json"))
    try:
        await alice.connect()
        raise AssertionError("a logged-out client connected")
    except imbox.ImboxError.Closed:
        pass
    # The token is dead on the box, not just forgotten here.
    stale = imbox.ImboxClient.open(saved)
    try:
        await stale.connect()
        raise AssertionError("the logged-out token still works")
    except imbox.ImboxError.Revoked as err:
        assert "pair or log in again" in str(err), err
    try:
        imbox.ImboxClient.open(alice.profile_dir())
        raise AssertionError("opened a deleted profile")
    except imbox.ImboxError.NotPaired:
        pass


async def test_typed_errors(box, home):
    imbox.set_log_level(imbox.LogLevel.WARN)
    imbox.set_log_level(imbox.LogLevel.OFF)
    for bad in ["imbox:nope", "https://box.example/chat#v=1", "imbox:pair?v=1&host=127.0.0.1&quic=1"]:
        try:
            imbox.parse_pairing_uri(bad)
            raise AssertionError(f"parsed {bad}")
        except imbox.ImboxError.InvalidPairingUri as err:
            assert "pairing" in str(err), err
    uri = box.invite()
    first = await imbox.ImboxClient.pair(os.path.join(home, "oscar"), uri, "oscar", PASSWORD, "phone")
    try:
        await imbox.ImboxClient.pair(os.path.join(home, "peggy"), uri, "peggy", PASSWORD, "phone")
        raise AssertionError("an invite was used twice")
    except imbox.ImboxError.InviteUsed:
        pass
    info = imbox.parse_pairing_uri(uri)
    try:
        await imbox.ImboxClient.login(os.path.join(home, "oscar2"), info.server_urls[0], info.fingerprint, "oscar", "wrong password!", "tablet")
        raise AssertionError("logged in with a wrong password")
    except imbox.ImboxError.Unauthorized:
        pass
    second = await imbox.ImboxClient.login(os.path.join(home, "oscar2"), info.server_urls[0], info.fingerprint, "oscar", PASSWORD, "tablet")
    assert len(await second.devices()) == 2
    # Another box's key: refused before anything is sent.
    other = "sha256:" + "A" * 43
    try:
        await imbox.ImboxClient.login(os.path.join(home, "oscar3"), info.server_urls[0], other, "oscar", PASSWORD, "laptop")
        raise AssertionError("connected to a box with another key")
    except imbox.ImboxError.PinMismatch as err:
        assert "pair again" in str(err), err
    try:
        await first.send_text("@nobody-here", "hi")
        raise AssertionError("sent to a user who does not exist")
    except imbox.ImboxError.NotFound:
        pass
    await first.close()
    await second.close()


async def test_over_wss(box, home):
    """The box's other address, WebSocket over TLS with the same pinned key
    (what pairing falls back to where UDP is blocked): messages, an
    attachment over HTTPS (tus), and a network change, which closes the TCP
    connection and reconnects."""
    uri = box.invite()
    info = imbox.parse_pairing_uri(uri)
    wss = [url for url in info.server_urls if url.startswith("wss://")][0]
    await imbox.ImboxClient.pair(os.path.join(home, "trent"), uri, "trent", PASSWORD, "phone")
    alice = await imbox.ImboxClient.login(os.path.join(home, "trent-web"), wss, info.fingerprint, "trent", PASSWORD, "laptop")
    bob = await paired(box, home, "victor")
    session = await alice.connect()
    assert session.server.startswith("wss://"), session
    source = os.path.join(home, "notes.txt")
    with open(source, "wb") as f:
        f.write(os.urandom(700 * 1024))
    attachment = await alice.upload(source, None)
    await alice.send_attachments("@victor", "", [attachment])
    message, _ = await next_message(bob)
    dest = os.path.join(home, "notes-received.txt")
    await bob.download(message.attachments[0].id, dest, None)
    assert filecmp.cmp(source, dest, shallow=False)
    assert await alice.network_changed() is None
    await bob.send_text("@trent", "after the reconnect")
    message, _ = await next_message(alice)
    if message._from == "trent":  # Alice's own attachment, in her stream too.
        message, _ = await next_message(alice)
    assert message.text == "after the reconnect", message
    await alice.close()
    await bob.close()


async def test_push_registration(box, home):
    """Registering a push endpoint (the push tests in tests/tests/push.rs
    check what the box sends there): the box's VAPID key, a refused
    endpoint, a registration that does not hold up delivery to an
    unreachable endpoint, and its removal."""
    alice = await paired(box, home, "walter")
    bob = await paired(box, home, "xavier")
    key = await alice.push_key()
    assert len(key) == 87, key  # 65 bytes of an uncompressed P-256 point, base64url
    p256dh = "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY"
    auth = "_ordMnz7uTCmrpBTeUV4Bw"
    try:
        await alice.register_push(imbox.PushKind.UNIFIED_PUSH, "http://127.0.0.1:9/up", p256dh, auth)
        raise AssertionError("registered a push endpoint that is not https")
    except imbox.ImboxError.InvalidArgument as err:
        assert "https" in str(err), err
    # Nothing listens there: the box's wake-ups fail, and delivery goes on.
    await alice.register_push(imbox.PushKind.UNIFIED_PUSH, "https://127.0.0.1:9/up/alice", p256dh, auth)
    await alice.suspend()
    await bob.send_text("@walter", "wake up")
    await alice.resume()
    assert (await next_message(alice))[0].text == "wake up"
    await alice.unregister_push()
    await alice.close()
    await bob.close()


TESTS = [
    test_pair_send_receive,
    test_listener_and_groups,
    test_attachments,
    test_network_change,
    test_suspend_resume,
    test_logout,
    test_typed_errors,
    test_over_wss,
    test_push_registration,
]


async def main(names):
    chosen = [t for t in TESTS if not names or t.__name__ in names or t.__name__.removeprefix("test_") in names]
    failed = []
    with Box() as box:
        for test in chosen:
            home = tempfile.mkdtemp(prefix="imbox-sdk-home-")
            started = time.monotonic()
            try:
                await test(box, home)
                print(f"ok   {test.__name__} ({elapsed_ms(started):.0f} ms)")
            except Exception:  # noqa: BLE001 - report every failure, then go on
                failed.append(test.__name__)
                print(f"FAIL {test.__name__}")
                traceback.print_exc()
            finally:
                shutil.rmtree(home, ignore_errors=True)
        if failed:
            print("imboxd's log (last lines):\n" + "".join(box.log[-40:]))
    print(f"{len(chosen) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
