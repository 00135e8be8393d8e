// A real imboxd on loopback for the Kotlin test, started the way
// tests/web/box.mjs starts one: the binary from the cargo target directory, a
// temporary data directory, free ports on 127.0.0.1, an empty configuration
// file, settings in IMBOX_ variables. Accounts and invites go through
// `imboxd user add` and `imboxd invite create`, which reach the running daemon
// over its control socket.

package imbox.kotlintest

import java.io.File
import java.net.DatagramSocket
import java.net.InetAddress
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.nio.file.Files
import java.util.concurrent.TimeUnit

/** What a program printed, and how it ended. */
class Ran(val code: Int, val stdout: String, val stderr: String)

/** Runs a program to its end with `input` on its standard input. */
fun runProgram(command: List<String>, env: Map<String, String> = emptyMap(), input: String = ""): Ran {
    val builder = ProcessBuilder(command)
    builder.environment().clear()
    builder.environment()["PATH"] = System.getenv("PATH") ?: "/usr/bin:/bin"
    builder.environment().putAll(env)
    val err = Files.createTempFile("imbox-kotlin-", ".err").toFile()
    builder.redirectError(err)
    val process = builder.start()
    process.outputStream.use { it.write(input.toByteArray()) }
    val stdout = process.inputStream.bufferedReader().readText()
    // A hang guard only: these commands end in well under a second.
    if (!process.waitFor(120, TimeUnit.SECONDS)) {
        process.destroyForcibly()
        error("${command.joinToString(" ")} did not end within 2 minutes")
    }
    val stderr = err.readText()
    err.delete()
    return Ran(process.exitValue(), stdout, stderr)
}

private fun freeTcpPort(): Int = ServerSocket(0, 1, InetAddress.getLoopbackAddress()).use { it.localPort }

private fun freeUdpPort(): Int =
    DatagramSocket(InetSocketAddress(InetAddress.getLoopbackAddress(), 0)).use { it.localPort }

private fun connects(port: Int): Boolean =
    try {
        Socket().use { it.connect(InetSocketAddress(InetAddress.getLoopbackAddress(), port), 1000) }
        true
    } catch (e: java.io.IOException) {
        false
    }

/** A running imboxd; [stop] ends it and removes its data. */
class Box private constructor(
    private val imboxd: String,
    val dir: File,
    private val config: File,
    private val data: File,
    private val process: Process,
    private val log: File,
) {
    companion object {
        /** Starts imboxd from `targetDir`/debug and returns once its HTTPS port answers. */
        fun start(targetDir: File): Box {
            val imboxd = File(targetDir, "debug/imboxd")
            check(imboxd.canExecute()) { "$imboxd is missing: build it first (cargo build -p imboxd)" }
            val dir = Files.createTempDirectory("imbox-kotlin-").toFile()
            val data = File(dir, "data")
            val runDir = File(dir, "run")
            val config = File(dir, "empty.toml").apply { writeText("") }
            val log = File(dir, "imboxd.log")
            val http = freeTcpPort()
            val https = freeTcpPort()
            val quic = freeUdpPort()
            val builder = ProcessBuilder(
                imboxd.path, "--config", config.path, "--data-dir", data.path,
                "run", "--listen", "127.0.0.1:$http",
            )
            builder.environment().clear()
            builder.environment().putAll(
                mapOf(
                    "PATH" to (System.getenv("PATH") ?: "/usr/bin:/bin"),
                    "IMBOX_HTTPS__LISTEN" to "127.0.0.1:$https",
                    "IMBOX_QUIC__LISTEN" to "127.0.0.1:$quic",
                    "IMBOX_LOG__LEVEL" to "info",
                    "IMBOX_SETUP__STORAGE_STATUS" to File(runDir, "storage.json").path,
                    "IMBOX_SETUP__STORAGE_PROGRESS" to File(runDir, "storage-progress").path,
                ),
            )
            builder.redirectErrorStream(true)
            builder.redirectOutput(log)
            val process = builder.start()
            // Ended with the JVM too, whatever way it ends (a failed step, Ctrl-C, run.sh's timeout).
            Runtime.getRuntime().addShutdownHook(Thread { process.destroy() })
            val claimFile = File(data, "imbox-claim.txt")
            val controlSocket = File(data, "control.sock")
            // Ready once the claim file and the control socket exist (imboxd
            // binds HTTPS, then QUIC, then the control socket) and HTTPS
            // accepts connections.
            val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60)
            while (!(claimFile.exists() && controlSocket.exists() && connects(https))) {
                check(process.isAlive) { "imboxd exited early:\n${log.readText()}" }
                check(System.nanoTime() < deadline) { "imboxd did not start within a minute:\n${log.readText()}" }
                Thread.sleep(100)
            }
            return Box(imboxd.path, dir, config, data, process, log)
        }
    }

    private fun admin(vararg args: String, input: String = ""): String {
        val ran = runProgram(listOf(imboxd, "--config", config.path, "--data-dir", data.path) + args, input = input)
        check(ran.code == 0) { "imboxd ${args.joinToString(" ")} failed (${ran.code}): ${ran.stderr}" }
        return ran.stdout.trim()
    }

    /** Creates an account. */
    fun addUser(name: String, password: String) {
        admin("user", "add", name, input = "$password\n")
    }

    /** A one-time invite as a pairing URI (`imbox:pair?…`), as the invite's QR code carries it. */
    fun invite(): String = admin("invite", "create", "--uri")

    /** What imboxd logged so far. */
    fun log(): String = log.readText()

    fun stop() {
        process.destroy()
        if (!process.waitFor(15, TimeUnit.SECONDS)) process.destroyForcibly().waitFor()
        dir.deleteRecursively()
    }
}
