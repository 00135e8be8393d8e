// The imbox SDK in an Android app: pair from a scanned invite QR code,
// collect events in a coroutine, send, and follow the app's lifecycle and
// the phone's network. docs/MOBILE.md quotes this file; `make test-kotlin`
// compiles it and runs it against a real imboxd (ffi/tests/kotlin/), so it
// stays true to the generated bindings.
//
// AppLifecycle and NetworkChanges use Android's own types (androidx.lifecycle,
// android.net); the test compiles them against small stand-ins of those
// types (ffi/tests/kotlin/android/), since there is no Android SDK here.

package org.imbox.samples

import android.net.ConnectivityManager
import android.net.Network
import androidx.lifecycle.DefaultLifecycleObserver
import androidx.lifecycle.LifecycleOwner
import java.util.UUID
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import org.imbox.sdk.HistoryPage
import org.imbox.sdk.ImboxClient
import org.imbox.sdk.ImboxEvent
import org.imbox.sdk.ImboxException
import org.imbox.sdk.PairingInfo
import org.imbox.sdk.ProgressListener
import org.imbox.sdk.PushKind
import org.imbox.sdk.SentMessage
import org.imbox.sdk.SessionInfo
import org.imbox.sdk.TransferProgress
import org.imbox.sdk.parsePairingUri

/**
 * One paired device. `profileDir` is app-private storage (`context.filesDir`
 * + "/imbox"): the SDK keeps the device's token, the box's pinned key and
 * the sync cursor there. `scope` outlives screens (a scope of the
 * Application, or `ProcessLifecycleOwner.get().lifecycleScope`).
 */
class ChatSession(private val scope: CoroutineScope, private val profileDir: String) {
    @Volatile private var client: ImboxClient? = null
    private var events: Job? = null

    private fun paired(): ImboxClient =
        client ?: throw IllegalStateException("not paired yet: call pair() or open() first")

    /** What the scanned QR code says, before asking the user for a name: the box's name and addresses. */
    fun inspect(scanned: String): PairingInfo = parsePairingUri(scanned) // throws ImboxException.InvalidPairingUri

    /**
     * The user scanned an invite and chose a name and a password. The box's
     * key is pinned from the QR code: no certificate to install. Failures
     * are ImboxException subclasses (InviteUsed, NameTaken, WeakPassword,
     * Unreachable, ...) whose `reason` says what to do, in words to show.
     */
    suspend fun pair(scanned: String, username: String, password: String, deviceName: String) {
        client = ImboxClient.pair(profileDir, scanned, username, password, deviceName)
    }

    /** Every later start of the app: the profile is on disk already. */
    fun open() {
        client = ImboxClient.open(profileDir) // throws ImboxException.NotPaired when there is none
    }

    /** Connects and says who this device is (user, device id, who is online). */
    suspend fun connect(): SessionInfo = paired().connect()

    /**
     * Hands every event to `onEvent`, in order, each once (also across
     * restarts: the SDK commits its cursor as events are handed out). The
     * loop keeps running while the app is in the background: nextEvent()
     * waits until resume().
     */
    fun collectEvents(onEvent: suspend (ImboxEvent) -> Unit) {
        val client = paired()
        events?.cancel()
        events = scope.launch {
            var backoffMs = 1_000L
            while (isActive) {
                try {
                    onEvent(client.nextEvent())
                    backoffMs = 1_000L
                } catch (e: ImboxException.Unreachable) {
                    // No network or the box is down: transient, try again later.
                    delay(backoffMs)
                    backoffMs = (backoffMs * 2).coerceAtMost(60_000L)
                } catch (e: ImboxException.RateLimited) {
                    delay(e.retryAfterMs?.toLong() ?: backoffMs)
                } catch (e: ImboxException.Closed) {
                    break // closed or logged out
                }
            }
        }
    }

    /** Stops handing out events (the one being handed out may come again later). */
    fun stopEvents() {
        events?.cancel()
        events = null
    }

    /**
     * Sends a text to "@user" or "#group". Keep `clientId` with an unsent
     * message and pass it again on retry: the box never stores it twice.
     */
    suspend fun send(to: String, text: String, clientId: String = UUID.randomUUID().toString()): SentMessage =
        paired().sendText(to, text, clientId)

    /**
     * Sends a file (a photo, a voice note) with a caption. `onProgress` gets
     * bytes done and the total after every chunk, on one of the SDK's
     * threads: post to the main thread to draw it. An interrupted upload of
     * the same file resumes where it stopped.
     */
    suspend fun sendFile(
        to: String,
        path: String,
        caption: String,
        onProgress: (done: ULong, total: ULong) -> Unit = { _, _ -> },
    ): SentMessage {
        val client = paired()
        val progress = object : ProgressListener {
            override fun onProgress(progress: TransferProgress) = onProgress(progress.done, progress.total)
        }
        val attachment = client.upload(path, progress)
        return client.sendAttachments(to, caption, listOf(attachment))
    }

    /** A chat screen opens: its latest messages, oldest first (pass `before` to page back). */
    suspend fun latest(chat: String, before: ULong? = null): HistoryPage = paired().history(chat, before, 50u)

    /**
     * UnifiedPush: the box's VAPID key, for the distributor (the connector
     * library's `register(…, vapid = key)`), so that it accepts the box's
     * wake-ups. Throws ImboxException.PushDisabled when the box's owner
     * turned push off: the app then syncs only when it is opened.
     */
    suspend fun pushKey(): String = paired().pushKey()

    /**
     * UnifiedPush's onNewEndpoint: while this device has no connection, the
     * box wakes it at `endpoint` with a wake-up naming a conversation, never
     * the text (onMessage: call onStart() and read events). `p256dh` and
     * `auth` are the connector's public keys for this endpoint.
     */
    suspend fun onNewEndpoint(endpoint: String, p256dh: String, auth: String) =
        paired().registerPush(PushKind.UNIFIED_PUSH, endpoint, p256dh, auth)

    /** UnifiedPush's onUnregistered: no more wake-ups (logging out removes them too). */
    suspend fun onUnregistered() = paired().unregisterPush()

    /** Lifecycle ON_STOP (the app went to the background): no connection, no keep-alive. */
    suspend fun onStop() = paired().suspend()

    /** Lifecycle ON_START (back in the foreground): reconnects, with QUIC 0-RTT where safe. */
    suspend fun onStart(): SessionInfo = paired().resume()

    /**
     * NetworkCallback.onAvailable (Wi-Fi to mobile data): the QUIC
     * connection moves to the new network and the session goes on. Returns
     * the new local address, or null when no connection was open.
     */
    suspend fun onNetworkChanged(): String? = paired().networkChanged()

    /**
     * The app is finishing (the last screen's onDestroy, or before the
     * process is let go): the cursor is saved and the connection closed;
     * `open()` picks up from there next time.
     */
    suspend fun close() {
        stopEvents()
        paired().shutdown()
        client = null
    }

    /** "Log out" in the app's settings: the box forgets this device, the profile is deleted. */
    suspend fun logOut() {
        stopEvents()
        paired().logout()
        client = null
    }
}

/**
 * Follows the app between foreground and background, in the Application's
 * onCreate: `ProcessLifecycleOwner.get().lifecycle.addObserver(AppLifecycle(session, scope))`.
 * One coroutine applies the changes in order; only the latest state counts.
 */
class AppLifecycle(private val session: ChatSession, scope: CoroutineScope) : DefaultLifecycleObserver {
    private val foreground = MutableStateFlow(true)

    init {
        scope.launch {
            var applied = true
            foreground.collect { visible ->
                if (visible == applied) return@collect
                applied = visible
                try {
                    if (visible) session.onStart() else session.onStop()
                } catch (e: ImboxException.Unreachable) {
                    // Back in the foreground without a network: the event loop reconnects later.
                }
            }
        }
    }

    override fun onStart(owner: LifecycleOwner) {
        foreground.value = true
    }

    override fun onStop(owner: LifecycleOwner) {
        foreground.value = false
    }
}

/**
 * Keeps the session across network changes:
 * `connectivityManager.registerDefaultNetworkCallback(NetworkChanges(session, scope))`.
 */
class NetworkChanges(private val session: ChatSession, private val scope: CoroutineScope) :
    ConnectivityManager.NetworkCallback() {
    override fun onAvailable(network: Network) {
        scope.launch {
            try {
                session.onNetworkChanged()
            } catch (e: ImboxException.Suspended) {
                // In the background: resume() connects on the new network anyway.
            }
        }
    }
}
