// How an iOS app uses the imbox SDK: pair from a scanned QR code, listen
// for events with async/await, send, and follow the app's lifecycle.
// Foundation only, so that it compiles on Linux too: ffi/tests/swift/run
// compiles this file with the generated bindings and runs it against a
// real box. docs/MOBILE.md quotes it.

import Foundation

// MARK: Pairing

/// Pairs this phone with a box from the text of an invite's QR code (an
/// `imbox:pair?…` link or the join link `https://HOST/join#…`) and keeps
/// the device's profile (its token and sync cursor) in `profileDir`: a
/// directory of the app's own, such as one in Application Support.
func pairFromQRCode(_ scanned: String, username: String, password: String,
                    profileDir: URL) async throws -> ImboxClient {
    // Reading the link sends nothing: show the box's name and ask first.
    let info = try parsePairingUri(uri: scanned)
    guard info.hasInvite else {
        throw ImboxError.InvalidPairingUri(
            message: "this QR code has no invite: ask the box's owner for a new one")
    }
    print("Joining \(info.boxName ?? info.hosts.first ?? "the box")")
    return try await ImboxClient.pair(
        profileDir: profileDir.path, pairingUri: scanned,
        username: username, password: password, deviceName: "iPhone")
}

/// On later launches: the profile is there, nothing to ask.
func openPaired(profileDir: URL) throws -> ImboxClient {
    try ImboxClient.open(profileDir: profileDir.path)
}

// MARK: Events

/// Hands every event to `onMessage` until the task is cancelled. Each
/// event comes once, in order, across restarts.
func listen(to client: ImboxClient, onMessage: @escaping @Sendable (Message) -> Void) async throws {
    while !Task.isCancelled {
        switch try await client.nextEvent() {
        case .message(let message):
            onMessage(message)
            try await client.markDelivered(conversation: "=\(message.conversation)", seq: message.seq)
        case .presence(let user, let online):
            print("\(user) is \(online ? "online" : "offline")")
        default:
            break
        }
    }
}

/// The callback form, for code that does not await: the SDK calls it from
/// one of its own threads, one event at a time.
final class MessageListener: EventListener {
    private let onMessage: @Sendable (Message) -> Void

    init(onMessage: @escaping @Sendable (Message) -> Void) {
        self.onMessage = onMessage
    }

    func onEvent(event: ImboxEvent) {
        if case .message(let message) = event {
            onMessage(message)
        }
    }

    func onError(error: ImboxError) {
        // Unreachable and RateLimited are retried by the SDK; anything else
        // (Revoked: pair again) ends the listener.
        print("events: \(error)")
    }
}

// MARK: Sending

/// Sends a text; the client id makes a retry after a failure safe (the box
/// stores the message once).
func send(_ text: String, to chat: String, with client: ImboxClient) async throws -> SentMessage {
    let clientId = UUID().uuidString
    do {
        return try await client.sendText(to: chat, text: text, clientId: clientId)
    } catch ImboxError.Unreachable {
        // A transient failure: the same id again never sends it twice.
        return try await client.sendText(to: chat, text: text, clientId: clientId)
    }
}

/// Sends a photo with a caption, showing the upload's progress.
func sendPhoto(at file: URL, caption: String, to chat: String,
               with client: ImboxClient) async throws -> SentMessage {
    let attachment = try await client.upload(path: file.path, progress: UploadProgress())
    return try await client.sendAttachments(to: chat, text: caption, attachments: [attachment])
}

final class UploadProgress: ProgressListener {
    func onProgress(progress: TransferProgress) {
        print("uploaded \(progress.done) of \(progress.total) bytes")
    }
}

// MARK: Lifecycle

/// What the app's lifecycle callbacks call. In SwiftUI:
///
///     .onChange(of: scenePhase) { _, phase in
///         Task {
///             if phase == .background { try await box.didEnterBackground() }
///             if phase == .active { _ = try await box.willEnterForeground() }
///         }
///     }
///
/// and from NWPathMonitor's pathUpdateHandler, when the interface in use
/// changes: `Task { try await box.networkDidChange() }`.
final class BoxConnection: Sendable {
    let client: ImboxClient

    init(client: ImboxClient) {
        self.client = client
    }

    /// `.background`: the cursor is saved, the connection closed; nothing
    /// is sent while the phone sleeps (push wakes the app).
    func didEnterBackground() async throws {
        try await client.suspend()
    }

    /// `.active`: back in one round trip (QUIC 0-RTT) when the box allows.
    func willEnterForeground() async throws -> SessionInfo {
        try await client.resume()
    }

    /// Wi-Fi to mobile data: the QUIC connection moves to a new socket and
    /// the session goes on without a new handshake.
    func networkDidChange() async throws {
        _ = try await client.networkChanged()
    }
}
