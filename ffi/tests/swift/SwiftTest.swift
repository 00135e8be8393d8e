// The Swift bindings against a real imboxd (ffi/tests/swift/run starts it):
// pairs from a real invite's pairing link with the box's key pinned, over
// QUIC, through the samples in ffi/samples/; talks with a second user who
// runs the `imbox` command-line client; and checks history, a network
// change, suspend/resume, typed errors and logout. Exits non-zero at the
// first check that fails.

import Foundation

let env = ProcessInfo.processInfo.environment

func setting(_ name: String) -> String {
    guard let value = env[name], !value.isEmpty else {
        fail("\(name) is not set: run this through ffi/tests/swift/run")
    }
    return value
}

func fail(_ what: String) -> Never {
    FileHandle.standardError.write(Data("FAIL \(what)\n".utf8))
    exit(1)
}

func check(_ ok: Bool, _ what: String) {
    if !ok { fail(what) }
    print("ok   \(what)")
}

let invite = setting("IMBOX_SWIFT_INVITE")
let work = URL(fileURLWithPath: setting("IMBOX_SWIFT_WORK"))
let password = "correct horse battery staple"

/// The other user, ben, through the command-line client (paired by the
/// run script). Returns its standard output.
@discardableResult
func ben(_ arguments: String...) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: setting("IMBOX_CLI"))
    process.arguments = ["--profile", setting("IMBOX_CLI_PROFILE")] + arguments
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        fail("imbox \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
    }
    return String(decoding: data, as: UTF8.self)
}

/// The `text` fields of the JSON lines the command-line client printed.
func texts(_ lines: String) throws -> [String] {
    try lines.split(separator: "\n").compactMap { line in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        return object?["text"] as? String
    }
}

@main
struct SwiftTest {
    static func main() async {
        do {
            try await checks()
        } catch {
            fail("unexpected error: \(error)")
        }
    }

    static func checks() async throws {
        // A link that is not a pairing link is a typed error, not a crash.
        do {
            _ = try parsePairingUri(uri: "imbox:pair?v=9&fp=nonsense")
            fail("a pairing link of version 9 was accepted")
        } catch ImboxError.InvalidPairingUri(let message) {
            check(!message.isEmpty, "a bad pairing link throws ImboxError.InvalidPairingUri: \(message)")
        }

        let info = try parsePairingUri(uri: invite)
        check(info.hasInvite && info.fingerprint.hasPrefix("sha256:"), "the invite's link has an invite and a key to pin")
        check(info.serverUrls.first?.hasPrefix("quic://127.0.0.1:") == true, "QUIC is the first way to the box: \(info.serverUrls)")

        // Pairing, through the sample.
        let profile = work.appendingPathComponent("ana")
        let client = try await pairFromQRCode(invite, username: "ana", password: password, profileDir: profile)
        let box = BoxConnection(client: client)
        let session = try await client.connect()
        check(session.user == "ana" && session.server.hasPrefix("quic://"), "paired as ana over \(session.server)")

        // Events, through the sample's listener loop, into a stream the checks read.
        let (messages, inbox) = AsyncStream<Message>.makeStream()
        let listening = Task {
            do {
                try await listen(to: client) { inbox.yield($0) }
            } catch {
                inbox.finish()
            }
        }
        var received = messages.makeAsyncIterator()

        let sent = try await send("hello from Swift", to: "@ben", with: client)
        check(sent.seq == 1 && !sent.duplicate, "sent a message to ben (seq \(sent.seq))")
        check(try texts(try ben("sync")).contains("hello from Swift"), "ben's command-line client received it")

        // The box hands a user's own messages to all of the user's devices, in order.
        let echo = await received.next()
        check(echo?.from == "ana" && echo?.id == sent.id, "ana's own message came back as an event, for her other devices")
        try ben("send", "ana", "hello from the command line")
        let reply = await received.next()
        check(reply?.from == "ben" && reply?.text == "hello from the command line", "ana received ben's reply as an event")

        let history = try await client.history(conversation: "@ben")
        check(history.messages.map(\.text) == ["hello from Swift", "hello from the command line"],
              "history has both messages, oldest first")

        // A file, through the sample: uploaded with progress, sent, and fetched by
        // ben's command-line client byte for byte.
        let photo = work.appendingPathComponent("photo.bin")
        let bytes = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try bytes.write(to: photo)
        let withPhoto = try await sendPhoto(at: photo, caption: "a photo", to: "@ben", with: client)
        check(await received.next()?.attachments.first?.size == UInt64(bytes.count), "sent a file of \(bytes.count) bytes (seq \(withPhoto.seq))")
        let attachmentId = try await client.history(conversation: "@ben").messages.last?.attachments.first?.id ?? ""
        let fetched = work.appendingPathComponent("fetched.bin")
        try ben("download", attachmentId, "--output", fetched.path)
        check(try Data(contentsOf: fetched) == bytes, "ben's command-line client downloaded the same bytes")

        // Wi-Fi to mobile data: a new local socket, the same session.
        let before = try await client.localAddress()
        try await box.networkDidChange()
        let after = try await client.localAddress()
        check(before != nil && after != nil && before != after, "the network change moved the connection: \(before ?? "-") → \(after ?? "-")")
        try ben("send", "ana", "after the network change")
        check(await received.next()?.text == "after the network change", "events go on after the network change")

        // Background: nothing goes out; a call that needs the box says so.
        try await box.didEnterBackground()
        do {
            _ = try await client.sendText(to: "@ben", text: "from the background")
            fail("a send while suspended succeeded")
        } catch ImboxError.Suspended(let message) {
            check(!message.isEmpty, "a send while suspended throws ImboxError.Suspended")
        }
        try ben("send", "ana", "while you were away")
        let resumed = try await box.willEnterForeground()
        check(resumed.user == "ana", "resumed (early data: \(resumed.earlyData))")
        try ben("send", "ana", "welcome back")
        let missed = await received.next()
        let next = await received.next()
        check(missed?.text == "while you were away" && next?.text == "welcome back",
              "the message sent while suspended arrives once, then the next one")

        // A used invite is refused with its own error.
        do {
            _ = try await pairFromQRCode(invite, username: "eve", password: password,
                                         profileDir: work.appendingPathComponent("eve"))
            fail("a used invite paired a second device")
        } catch ImboxError.InviteUsed(let message) {
            check(!message.isEmpty, "a used invite throws ImboxError.InviteUsed: \(message)")
        }

        // The callback form: a third user, cy, whose events come to a listener
        // the SDK calls from its own threads.
        let cyProfile = work.appendingPathComponent("cy")
        let cy = try await pairFromQRCode(setting("IMBOX_SWIFT_INVITE_CY"), username: "cy", password: password,
                                          profileDir: cyProfile)
        let (cyMessages, cyInbox) = AsyncStream<Message>.makeStream()
        try cy.setListener(listener: MessageListener { cyInbox.yield($0) })
        try ben("send", "cy", "hello cy")
        var cyReceived = cyMessages.makeAsyncIterator()
        let cyGot = await cyReceived.next()
        check(cyGot?.from == "ben" && cyGot?.text == "hello cy", "cy's listener was called with ben's message")
        try await cy.close()

        // The app quits and starts again: the profile opens without a
        // password, and what came meanwhile arrives; what the listener had
        // does not come again.
        try ben("send", "cy", "while cy was closed")
        let reopened = try openPaired(profileDir: cyProfile)
        var firstAfter: Message?
        while firstAfter == nil {
            if case .message(let message) = try await reopened.nextEvent() {
                firstAfter = message
            }
        }
        check(firstAfter?.text == "while cy was closed", "after a restart the next message is the one sent meanwhile, once")
        try await reopened.close()

        // Logout: the profile is gone, and so is the listener.
        try await client.logout()
        _ = await listening.result
        do {
            _ = try openPaired(profileDir: profile)
            fail("the profile opened after logout")
        } catch ImboxError.NotPaired(let message) {
            check(!message.isEmpty, "after logout the profile is gone: ImboxError.NotPaired")
        }
        print("all Swift checks passed")
    }
}
