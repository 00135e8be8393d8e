// The Kotlin bindings against a real imboxd: the generated code (UniFFI,
// JNA loading libimbox_ffi.so) and the sample ffi/samples/Pairing.kt, driven
// from coroutines. The other side of the conversation is the `imbox` CLI
// (an independent client) and a second SDK client.
//
// Run by ffi/tests/kotlin/run.sh (make test-kotlin) with the cargo target
// directory as its argument.

package imbox.kotlintest

import android.net.Network
import androidx.lifecycle.LifecycleOwner
import java.io.File
import java.nio.file.Files
import kotlin.system.exitProcess
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.imbox.samples.AppLifecycle
import org.imbox.samples.ChatSession
import org.imbox.samples.NetworkChanges
import org.imbox.sdk.EventListener
import org.imbox.sdk.ImboxClient
import org.imbox.sdk.ImboxEvent
import org.imbox.sdk.ImboxException
import org.imbox.sdk.Message
import org.imbox.sdk.parsePairingUri

private const val ALICE_PASSWORD = "alice's long password"
private const val BOB_PASSWORD = "bob's long password"

/** A hang guard for waits on the box, never a measure: a step that needs it has failed anyway. */
private const val HANG_MS = 60_000L

/** The `imbox` CLI with Bob's profile. */
private class Cli(targetDir: File, private val profile: File) {
    private val imbox = File(targetDir, "debug/imbox").path

    fun imbox(vararg args: String): String {
        val ran = runProgram(
            listOf(imbox, "--profile", profile.path) + args,
            env = mapOf("IMBOX_PASSWORD" to BOB_PASSWORD),
        )
        check(ran.code == 0) { "imbox ${args.joinToString(" ")} failed (${ran.code}): ${ran.stderr}" }
        return ran.stdout
    }
}

/** Hands events to the test: the listener form of the SDK's events. */
private class Collector(private val into: Channel<ImboxEvent>) : EventListener {
    val failure = CompletableDeferred<ImboxException>()

    override fun onEvent(event: ImboxEvent) {
        into.trySend(event)
    }

    override fun onError(error: ImboxException) {
        failure.complete(error)
    }
}

/**
 * The next message among `events` not sent by `self` (the delivery log
 * hands a device its own messages too), skipping presence, typing and the
 * like.
 */
private suspend fun nextMessage(events: Channel<ImboxEvent>, self: String): Message =
    withTimeout(HANG_MS) {
        var message: Message? = null
        while (message == null) {
            val event = events.receive()
            if (event is ImboxEvent.Message && event.message.from != self) message = event.message
        }
        message
    }

/** Runs `body`, which must throw an `E`; returns it. */
private suspend inline fun <reified E : Throwable> expectThrows(crossinline body: suspend () -> Unit): E {
    try {
        body()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e", e)
    }
    throw AssertionError("expected ${E::class.simpleName}, but nothing was thrown")
}

fun main(args: Array<String>) {
    val targetDir = File(args.getOrNull(0) ?: error("usage: MainKt CARGO_TARGET_DIR"))
    val box = Box.start(targetDir)
    val checks = Checks()
    try {
        runBlocking { scenario(box, targetDir, checks) }
    } finally {
        if (checks.failed) println("imboxd's log:\n${box.log()}")
        box.stop()
    }
    exitProcess(checks.finish())
}

private suspend fun scenario(box: Box, targetDir: File, checks: Checks) {
    val work = Files.createTempDirectory("imbox-kotlin-profiles-").toFile()
    val scope = CoroutineScope(SupervisorJob())
    val events = Channel<ImboxEvent>(capacity = 256)
    val session = ChatSession(scope, File(work, "alice").path)
    val bob = Cli(targetDir, File(work, "bob"))
    val aliceInvite = box.invite()
    val bobInvite = box.invite()
    val carolInvite = box.invite()

    checks.step("parsePairingUri reads the invite's QR code") {
        val info = session.inspect(aliceInvite)
        check(info.hosts == listOf("127.0.0.1")) { "hosts ${info.hosts}" }
        check(info.quicPort != null) { "no QUIC port in $info" }
        check(info.fingerprint.startsWith("sha256:")) { "fingerprint ${info.fingerprint}" }
        check(info.hasInvite) { "no invite in $info" }
    }

    checks.step("a malformed pairing link is ImboxException.InvalidPairingUri") {
        val e = expectThrows<ImboxException.InvalidPairingUri> { parsePairingUri("imbox:pair?v=1&fp=nonsense") }
        check(e.reason.isNotBlank()) { "no reason in $e" }
    }

    checks.step("Alice pairs from the invite (sample), Bob with the CLI") {
        session.pair(aliceInvite, "alice", ALICE_PASSWORD, "kotlin-test")
        bob.imbox("pair", bobInvite, "bob")
        val me = session.connect()
        check(me.user == "alice") { "connected as ${me.user}" }
        check(me.server.startsWith("quic://")) { "not over QUIC: ${me.server}" }
    }

    checks.step("a used invite is ImboxException.InviteUsed") {
        expectThrows<ImboxException.InviteUsed> {
            ImboxClient.pair(File(work, "dave").path, aliceInvite, "dave", "dave's long password", "kotlin-test")
        }
    }

    checks.step("a wrong password is ImboxException.Unauthorized") {
        val info = parsePairingUri(aliceInvite)
        expectThrows<ImboxException.Unauthorized> {
            ImboxClient.login(
                File(work, "alice-2").path,
                info.serverUrls.first(),
                info.fingerprint,
                "alice",
                "not alice's password",
                "kotlin-test",
            )
        }
    }

    checks.step("a box whose key is not the pinned one is ImboxException.PinMismatch") {
        val info = parsePairingUri(aliceInvite)
        val digest = info.fingerprint.removePrefix("sha256:")
        val other = "sha256:" + (if (digest[0] == 'A') 'B' else 'A') + digest.substring(1)
        expectThrows<ImboxException.PinMismatch> {
            ImboxClient.login(File(work, "alice-3").path, info.serverUrls.first(), other, "alice", ALICE_PASSWORD, "kotlin-test")
        }
    }

    checks.step("Alice's message reaches Bob's CLI") {
        val sent = session.send("@bob", "hello from kotlin")
        check(!sent.duplicate) { "first send reported as a duplicate: $sent" }
        val synced = bob.imbox("sync")
        check("hello from kotlin" in synced) { "bob's sync printed: $synced" }
    }

    checks.step("a file sent with progress (sample) is what Bob's CLI downloads, byte for byte") {
        val content = ByteArray(300_000).also { java.util.Random(16).nextBytes(it) }
        val file = File(work, "photo.bin").apply { writeBytes(content) }
        val seen = java.util.Collections.synchronizedList(mutableListOf<Pair<ULong, ULong>>())
        session.sendFile("@bob", file.path, "a file") { done, total -> seen += done to total }
        val size = content.size.toULong()
        check(seen.isNotEmpty() && seen.last() == size to size) { "progress ${seen.takeLast(3)}" }
        check(seen.zipWithNext().all { (a, b) -> a.first <= b.first }) { "progress went back: $seen" }
        // An attachment's id is the SHA-256 of its content.
        val id = java.security.MessageDigest.getInstance("SHA-256").digest(content)
            .joinToString("") { "%02x".format(it) }
        check(id in bob.imbox("sync")) { "bob's sync has no attachment $id" }
        val copy = File(work, "photo-copy.bin")
        bob.imbox("download", id, "--output", copy.path)
        check(copy.readBytes().contentEquals(content)) { "the download differs from what was sent" }
    }

    checks.step("a retried send with the same client id is not stored twice") {
        val first = session.send("@bob", "sent once", clientId = "kotlin-retry-1")
        val again = session.send("@bob", "sent once", clientId = "kotlin-retry-1")
        check(again.duplicate && again.seq == first.seq) { "retry stored anew: $first then $again" }
    }

    session.collectEvents { events.send(it) }

    checks.step("Bob's message arrives as an event (nextEvent in a coroutine)") {
        bob.imbox("send", "alice", "hello from the cli")
        val message = nextMessage(events, "alice")
        check(message.from == "bob" && message.text == "hello from the cli") { "got $message" }
    }

    checks.step("history holds the conversation, oldest first") {
        val page = session.latest("@bob")
        val texts = page.messages.map { it.text }
        check(texts == listOf("hello from kotlin", "a file", "sent once", "hello from the cli")) { "history $texts" }
        check(page.messages.zipWithNext().all { (a, b) -> a.seq < b.seq }) { "not in order: $page" }
    }

    checks.step("the sample's UnifiedPush calls: the box's key, a registration refused, one kept, then removed") {
        val key = session.pushKey()
        // 65 bytes of an uncompressed P-256 point, unpadded base64url.
        check(key.length == 87) { "push key $key" }
        // The keys of a real subscription (any valid P-256 point and 16 bytes will do for the box).
        val p256dh = "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY"
        val auth = "_ordMnz7uTCmrpBTeUV4Bw"
        val refused = expectThrows<ImboxException.InvalidArgument> {
            session.onNewEndpoint("http://127.0.0.1:9/up", p256dh, auth)
        }
        check("https" in refused.reason) { "refusal says ${refused.reason}" }
        session.onNewEndpoint("https://127.0.0.1:9/up/alice", p256dh, auth)
        session.onUnregistered()
    }

    checks.step("after onStop/onStart, a message sent meanwhile arrives exactly once") {
        session.onStop()
        expectThrows<ImboxException.Suspended> { session.send("@bob", "while suspended") }
        bob.imbox("send", "alice", "while you were away")
        val resumed = session.onStart()
        check(resumed.user == "alice") { "resumed as $resumed" }
        val away = nextMessage(events, "alice")
        check(away.text == "while you were away") { "got $away" }
        // Exactly once: the next message is the next one Bob sends, not the same again.
        bob.imbox("send", "alice", "after the resume")
        val after = nextMessage(events, "alice")
        check(after.text == "after the resume") { "got $after" }
    }

    checks.step("a network change moves the connection and keeps the session") {
        val before = session.connect()
        val moved = session.onNetworkChanged()
        check(moved != null && moved != before.localAddress) { "local address ${before.localAddress} -> $moved" }
        bob.imbox("send", "alice", "after the move")
        val message = nextMessage(events, "alice")
        check(message.text == "after the move") { "got $message" }
        val now = session.connect()
        check(now.device == before.device && now.localAddress == moved) { "before $before, now $now" }
    }

    checks.step("the sample's AppLifecycle and NetworkChanges (on Android stand-ins) drive the session") {
        val owner = object : LifecycleOwner {}
        val lifecycle = AppLifecycle(session, scope)
        lifecycle.onStop(owner)
        // The observer and the callback act in their own coroutines: poll
        // until what they did shows.
        withTimeout(HANG_MS) {
            while (runCatching { session.connect() }.exceptionOrNull() !is ImboxException.Suspended) delay(20)
        }
        lifecycle.onStart(owner)
        val before = withTimeout(HANG_MS) {
            var info = runCatching { session.connect() }.getOrNull()
            while (info == null) {
                delay(20)
                info = runCatching { session.connect() }.getOrNull()
            }
            info
        }
        NetworkChanges(session, scope).onAvailable(Network())
        withTimeout(HANG_MS) {
            while (session.connect().localAddress == before.localAddress) delay(20)
        }
        bob.imbox("send", "alice", "after the callbacks")
        val message = nextMessage(events, "alice")
        check(message.text == "after the callbacks") { "got $message" }
    }

    checks.step("after the app closes and opens again, events go on where they stopped, each once") {
        session.close()
        bob.imbox("send", "alice", "while the app was closed")
        session.open()
        session.collectEvents { events.send(it) }
        val missed = nextMessage(events, "alice")
        check(missed.text == "while the app was closed") { "got $missed" }
        bob.imbox("send", "alice", "after the restart")
        val after = nextMessage(events, "alice")
        check(after.text == "after the restart") { "got $after" }
    }

    session.stopEvents()

    checks.step("a second SDK client (Carol) gets Alice's message through a listener") {
        val carol = ImboxClient.pair(File(work, "carol").path, carolInvite, "carol", "carol's long password", "kotlin-test")
        val heard = Channel<ImboxEvent>(capacity = 256)
        val collector = Collector(heard)
        carol.setListener(collector)
        session.send("@carol", "hello carol")
        val message = nextMessage(heard, "carol")
        check(message.from == "alice" && message.text == "hello carol") { "got $message" }
        carol.shutdown()
        check(!collector.failure.isCompleted || collector.failure.await() is ImboxException.Closed) {
            "listener failed: ${collector.failure.await()}"
        }
    }

    checks.step("logout revokes the device and deletes the profile") {
        // A copy of the profile keeps the token the box is about to forget.
        val copy = File(work, "alice-copy")
        File(work, "alice").copyRecursively(copy)
        session.logOut()
        expectThrows<ImboxException.NotPaired> { ImboxClient.open(File(work, "alice").path) }
        val revoked = expectThrows<ImboxException.Revoked> { ImboxClient.open(copy.path).connect() }
        // What the app shows the person: what happened and what to do.
        check("pair or log in again" in revoked.reason) { "reason: ${revoked.reason}" }
    }

    scope.cancel()
    work.deleteRecursively()
}
