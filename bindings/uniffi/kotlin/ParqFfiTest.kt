// The Kotlin tests of the ParQ bindings, written as an app developer would use them: the
// generated `dev.parq.ffi` package over libparq_ffi.so (JNA), against the gate vectors of the
// Rust fixtures and a real `parq serve` started here. A plain runner (no JUnit): each test prints
// `ok` or `FAILED`, and the last line is `kotlin: N passed, M failed`.
//
// Environment: PARQ_BIN (the `parq` binary), PARQ_GATE_VECTORS (the fixture), set by test.sh.

package dev.parq.ffi.test

import dev.parq.ffi.*
import java.io.IOException
import java.io.InputStream
import java.io.OutputStream
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.ByteBuffer
import java.nio.file.Files
import java.nio.file.Path
import java.util.Collections
import java.util.UUID
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec
import kotlin.concurrent.thread
import kotlin.system.exitProcess
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout

// ---- A tiny test harness ----------------------------------------------------------------------

class TestFailure(message: String) : AssertionError(message)

fun fail(message: String): Nothing = throw TestFailure(message)

fun expect(condition: Boolean, message: () -> String) {
    if (!condition) fail(message())
}

fun <T> assertEq(actual: T, expected: T, what: String) {
    if (actual != expected) fail("$what: expected <$expected>, got <$actual>")
}

/** Runs [block] and returns the exception of type [E] it must throw. */
suspend inline fun <reified E : Throwable> assertThrows(what: String, crossinline block: suspend () -> Any?): E {
    val result = try {
        block()
    } catch (e: Throwable) {
        if (e is E) return e
        fail("$what: expected ${E::class.simpleName}, got $e")
    }
    fail("$what: expected ${E::class.simpleName}, got the result $result")
}

val tests = mutableListOf<Pair<String, suspend () -> Unit>>()

fun test(name: String, body: suspend () -> Unit) {
    tests += name to body
}

// ---- A tiny JSON reader (the JDK has none) ----------------------------------------------------

class JsonReader(private val s: String) {
    private var i = 0

    fun read(): Any? {
        val v = value()
        ws()
        if (i != s.length) fail("trailing JSON at $i")
        return v
    }

    private fun ws() {
        while (i < s.length && s[i].isWhitespace()) i++
    }

    private fun value(): Any? {
        ws()
        return when (s[i]) {
            '{' -> obj()
            '[' -> arr()
            '"' -> str()
            't' -> lit("true", true)
            'f' -> lit("false", false)
            'n' -> lit("null", null)
            else -> num()
        }
    }

    private fun lit(word: String, v: Any?): Any? {
        if (!s.startsWith(word, i)) fail("bad JSON literal at $i")
        i += word.length
        return v
    }

    private fun take(c: Char) {
        ws()
        if (s[i] != c) fail("expected '$c' at $i in JSON")
        i++
    }

    private fun obj(): Map<String, Any?> {
        take('{')
        val m = LinkedHashMap<String, Any?>()
        ws()
        if (s[i] == '}') { i++; return m }
        while (true) {
            ws()
            val k = str()
            take(':')
            m[k] = value()
            ws()
            if (s[i] == ',') { i++; continue }
            take('}')
            return m
        }
    }

    private fun arr(): List<Any?> {
        take('[')
        val l = ArrayList<Any?>()
        ws()
        if (s[i] == ']') { i++; return l }
        while (true) {
            l += value()
            ws()
            if (s[i] == ',') { i++; continue }
            take(']')
            return l
        }
    }

    private fun str(): String {
        take('"')
        val sb = StringBuilder()
        while (true) {
            when (val c = s[i++]) {
                '"' -> return sb.toString()
                '\\' -> when (val e = s[i++]) {
                    'n' -> sb.append('\n')
                    't' -> sb.append('\t')
                    'r' -> sb.append('\r')
                    'b' -> sb.append('\b')
                    'f' -> sb.append('\u000c')
                    'u' -> { sb.append(s.substring(i, i + 4).toInt(16).toChar()); i += 4 }
                    else -> sb.append(e)
                }
                else -> sb.append(c)
            }
        }
    }

    private fun num(): Any {
        val start = i
        while (i < s.length && (s[i].isDigit() || s[i] in "+-.eE")) i++
        val t = s.substring(start, i)
        return t.toLongOrNull() ?: t.toDouble()
    }
}

fun toJson(v: Any?): String = when (v) {
    null -> "null"
    is String -> buildString {
        append('"')
        for (c in v) when {
            c == '"' -> append("\\\"")
            c == '\\' -> append("\\\\")
            c < ' ' -> append("\\u%04x".format(c.code))
            else -> append(c)
        }
        append('"')
    }
    is Map<*, *> -> v.entries.joinToString(",", "{", "}") { toJson(it.key as String) + ":" + toJson(it.value) }
    is List<*> -> v.joinToString(",", "[", "]") { toJson(it) }
    else -> v.toString()
}

@Suppress("UNCHECKED_CAST")
fun Any?.obj(): Map<String, Any?> = this as Map<String, Any?>

@Suppress("UNCHECKED_CAST")
fun Any?.list(): List<Any?> = this as List<Any?>

fun Map<String, Any?>.str(k: String): String = this[k] as String

fun Map<String, Any?>.long(k: String): Long = (this[k] as Number).toLong()

// ---- The fixture, a server, windows ----------------------------------------------------------

val vectors: Map<String, Any?> by lazy {
    val path = System.getenv("PARQ_GATE_VECTORS") ?: "bindings/uniffi/tests/fixtures/gate_vectors.json"
    JsonReader(Files.readString(Path.of(path))).read().obj()
}

/** A `parq serve` on memory with the demo city, on a free loopback port. */
class Server {
    val process: Process
    val baseUrl: String
    val gateKey: String
    val lots = LinkedHashMap<String, String>()
    private val log = Collections.synchronizedList(mutableListOf<String>())

    init {
        val bin = System.getenv("PARQ_BIN") ?: "target/debug/parq"
        val pb = ProcessBuilder(bin, "serve", "--memory", "--bind", "127.0.0.1:0", "--log-format", "text")
        pb.environment().putAll(
            mapOf(
                "PARQ_LOG" to "warn",
                "PARQ_RATE_IP" to "100000",
                "PARQ_RATE_USER" to "100000",
                "PARQ_RATE_KEY" to "100000",
            )
        )
        pb.redirectErrorStream(true)
        process = pb.start()
        Runtime.getRuntime().addShutdownHook(Thread { process.destroy() })
        val lines = LinkedBlockingQueue<String>()
        thread(isDaemon = true, name = "parq-serve-output") {
            process.inputStream.bufferedReader().forEachLine { log += it; lines += it }
        }
        var url: String? = null
        var key: String? = null
        val deadline = System.nanoTime() + 60_000_000_000L
        while (url == null) {
            val line = lines.poll(100, TimeUnit.MILLISECONDS)
            if (line == null) {
                if (!process.isAlive) fail("parq serve exited: ${log.joinToString("\n")}")
                if (System.nanoTime() > deadline) fail("parq serve did not say where it listens")
                continue
            }
            Regex("^  ([0-9a-f-]{36})  (.+)$").find(line)?.let { lots[it.groupValues[2]] = it.groupValues[1] }
            if (line.startsWith("demo gate key:")) key = line.substringAfter(":").trim()
            if (line.startsWith("listening on ")) url = line.removePrefix("listening on ").trim()
        }
        baseUrl = url
        gateKey = key ?: fail("parq serve printed no demo gate key")
    }

    fun lot(prefix: String): String = lots.entries.first { it.key.startsWith(prefix) }.value

    fun client(): ParqClient = ParqClient(baseUrl, quick())

    suspend fun driver(name: String): ParqClient {
        val c = client()
        val email = "$name-${UUID.randomUUID()}@kotlin.parq.test"
        c.register(email, PASSWORD)
        c.login(email, PASSWORD)
        return c
    }

    fun stop() {
        process.destroy()
        process.waitFor(10, TimeUnit.SECONDS)
    }
}

const val PASSWORD = "correct horse battery staple"

fun quick() = ClientOptions(timeoutMs = 20_000uL, maxRetries = 3u, initialBackoffMs = 20uL, maxBackoffMs = 200uL)

val serverLazy = lazy { Server() }
val server: Server by serverLazy

/** `[start, end)` starting `offsetHours` after the current quarter hour, `minutes` long. */
fun window(offsetHours: Long, minutes: Long): Pair<Long, Long> {
    val now = System.currentTimeMillis() / 1000
    val start = now - Math.floorMod(now, 900L) + offsetHours * 3600
    return start to start + minutes * 60
}

/** Live events, queued by the listener for the test to take. */
class Events : LiveListener {
    val queue = LinkedBlockingQueue<Any>()

    override fun onEvent(event: LiveEvent) {
        queue += event
    }

    override fun onError(error: ParqException) {
        queue += error
    }

    suspend fun next(ms: Long = 15_000): Any? = withContext(Dispatchers.IO) { queue.poll(ms, TimeUnit.MILLISECONDS) }

    /** The next lot event, skipping connection notices (which are collected in [notices]). */
    suspend fun nextLot(notices: MutableList<LiveEvent>): LotEvent {
        while (true) {
            when (val e = next() ?: fail("no live event within 15 s")) {
                is LiveEvent.Lot -> return e.event
                is LiveEvent.Disconnected, is LiveEvent.Reconnected -> notices += e as LiveEvent
                else -> fail("unexpected live item $e")
            }
        }
    }
}

fun totp(secretBase32: String, step: Long): String {
    val alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    var buffer = 0L
    var bits = 0
    val key = java.io.ByteArrayOutputStream()
    for (c in secretBase32.uppercase().filter { it != '=' }) {
        buffer = (buffer shl 5) or alphabet.indexOf(c).toLong()
        bits += 5
        if (bits >= 8) {
            key.write(((buffer shr (bits - 8)) and 0xff).toInt())
            bits -= 8
        }
    }
    val mac = Mac.getInstance("HmacSHA1")
    mac.init(SecretKeySpec(key.toByteArray(), "HmacSHA1"))
    val h = mac.doFinal(ByteBuffer.allocate(8).putLong(step).array())
    val o = h[19].toInt() and 0xf
    val bin = ((h[o].toInt() and 0x7f) shl 24) or ((h[o + 1].toInt() and 0xff) shl 16) or
        ((h[o + 2].toInt() and 0xff) shl 8) or (h[o + 3].toInt() and 0xff)
    return "%06d".format(bin % 1_000_000)
}

/** A loopback TCP proxy that can cut every connection and refuse new ones for a while. */
class Proxy(upstreamUrl: String) : AutoCloseable {
    private val upstream = URI(upstreamUrl)
    private val listener = ServerSocket(0, 50, InetAddress.getLoopbackAddress())
    private val sockets = Collections.synchronizedList(mutableListOf<Socket>())
    @Volatile var refusing = false
    val url = "http://127.0.0.1:${listener.localPort}"

    init {
        thread(isDaemon = true, name = "proxy-accept") {
            while (!listener.isClosed) {
                val client = try { listener.accept() } catch (e: IOException) { break }
                if (refusing) { client.close(); continue }
                val up = try { Socket(upstream.host, upstream.port) } catch (e: IOException) { client.close(); continue }
                sockets += client
                sockets += up
                pump(client.getInputStream(), up.getOutputStream(), client, up)
                pump(up.getInputStream(), client.getOutputStream(), client, up)
            }
        }
    }

    private fun pump(from: InputStream, to: OutputStream, a: Socket, b: Socket) = thread(isDaemon = true) {
        val buf = ByteArray(16 * 1024)
        try {
            while (true) {
                val n = from.read(buf)
                if (n < 0) break
                to.write(buf, 0, n)
                to.flush()
            }
        } catch (_: IOException) {
        } finally {
            runCatching { a.close() }
            runCatching { b.close() }
        }
    }

    /** Cuts every connection through the proxy. */
    fun sever() {
        synchronized(sockets) {
            sockets.forEach { runCatching { it.close() } }
            sockets.clear()
        }
    }

    override fun close() {
        listener.close()
        sever()
    }
}

/** A loopback "server" that answers every connection with the same bytes, whatever it is asked. */
class Garbage(private val answer: ByteArray?) : AutoCloseable {
    private val listener = ServerSocket(0, 50, InetAddress.getLoopbackAddress())
    val url = "http://127.0.0.1:${listener.localPort}"

    init {
        thread(isDaemon = true, name = "garbage") {
            while (!listener.isClosed) {
                val s = try { listener.accept() } catch (e: IOException) { break }
                thread(isDaemon = true) {
                    s.use {
                        runCatching {
                            if (answer != null) {
                                // Read the request head, then answer and hang up.
                                val input = it.getInputStream()
                                val head = StringBuilder()
                                while (!head.endsWith("\r\n\r\n")) {
                                    val b = input.read()
                                    if (b < 0) break
                                    head.append(b.toChar())
                                }
                                it.getOutputStream().write(answer)
                                it.getOutputStream().flush()
                            }
                        }
                    }
                }
            }
        }
    }

    override fun close() = listener.close()
}

fun http(status: String, contentType: String, body: String): ByteArray =
    ("HTTP/1.1 $status\r\nContent-Type: $contentType\r\nContent-Length: ${body.toByteArray().size}\r\n" +
        "Connection: close\r\n\r\n$body").toByteArray()

fun code(d: ScanDecision): String = if (d.allowed) "allow" else d.reason!!.name.lowercase()

fun direction(s: String) = if (s == "entry") Direction.ENTRY else Direction.EXIT

// ---- The tests --------------------------------------------------------------------------------

fun registerTests() {
    test("the gate decides every vector of gate_vectors.json exactly as Rust does") {
        val v = vectors
        val gate = GateVerifier.fromKeysJson(toJson(v["public_keys"]), v.long("grace_seconds"), ReentryPolicy.NOT_ALLOWED)
        assertEq(gate.applyRevocationsJson(toJson(v["revocations"])), 1uL, "new revocations")
        assertEq(gate.revocationVersion(), 1uL, "revocation version")
        val passes = v["passes"].obj()
        val seen = mutableSetOf<String>()
        for ((i, s) in v["steps"].list().map { it.obj() }.withIndex()) {
            val d = gate.scan(passes.str(s.str("pass")), s.str("lot_id"), direction(s.str("direction")), s.long("at_epoch_seconds"), s.str("scan_id"))
            assertEq(code(d), s.str("expect"), "step $i (${s["pass"]} ${s["direction"]} at ${s["at"]})")
            expect(d.allowed == (d.reason == null)) { "step $i: allowed and reason disagree: $d" }
            seen += code(d)
        }
        val offline = Refusal.entries.filter { it != Refusal.NOT_PAID }.map { it.name.lowercase() } + "allow"
        assertEq(seen, offline.toSet(), "the vectors cover accept and every refusal an offline gate gives")
        // The pass decodes to what Rust wrote.
        val mine = v["mine"].obj()
        val claims = verifyPassJson(passes.str("mine"), toJson(v["public_keys"]))
        assertEq(claims.keyId, 1u, "key id")
        assertEq(claims.reservationId, mine.str("reservation_id"), "reservation")
        assertEq(claims.lotId, mine.str("lot_id"), "lot")
        assertEq(claims.spotId, mine.str("spot_id"), "spot")
        assertEq(claims.startEpochSeconds, mine.long("start_epoch_seconds"), "start")
        assertEq(claims.endEpochSeconds, mine.long("end_epoch_seconds"), "end")
    }

    test("a gate built from records and restored from its saved state decides alike") {
        val v = vectors
        val keys = publicKeysFromJson(toJson(v["public_keys"]))
        var gate = GateVerifier(keys, v.long("grace_seconds"), ReentryPolicy.NOT_ALLOWED)
        // The revocation delta as a record, as an app that keeps its own model would pass it.
        val d = v["revocations"].obj()
        val delta = RevocationDelta(
            from = d.long("from").toULong(),
            to = d.long("to").toULong(),
            revocations = d["revocations"].list().map { it.obj() }.map {
                Revocation(
                    version = it.long("version").toULong(),
                    reservationId = it.str("reservation"),
                    passNonceHex = null,
                    reason = RevocationReason.CANCELLED,
                    atEpochSeconds = java.time.Instant.parse(it.str("at")).epochSecond,
                )
            },
        )
        assertEq(gate.applyRevocations(delta), 1uL, "new revocations")
        assertEq(gate.applyRevocations(delta), 0uL, "the same delta again adds nothing")
        val passes = v["passes"].obj()
        val steps = v["steps"].list().map { it.obj() }
        for ((i, s) in steps.withIndex()) {
            if (i == steps.size / 2) {
                // The gate restarts halfway: it still knows who is inside and what was revoked.
                val saved = gate.saveState()
                gate.close()
                gate = GateVerifier.restore(saved)
                assertEq(gate.revocationVersion(), 1uL, "restored revocations")
            }
            val d2 = gate.scan(passes.str(s.str("pass")), s.str("lot_id"), direction(s.str("direction")), s.long("at_epoch_seconds"), s.str("scan_id"))
            assertEq(code(d2), s.str("expect"), "step $i")
        }
        assertEq(gate.presence(v["mine"].obj().str("reservation_id")), Presence.LEFT, "presence")
    }

    test("offline quotes price flat, tiered and incrementing lines with a daily cap") {
        val t0 = 1_893_916_800L // 2030-01-07T00:00:00Z
        fun h(hours: Double) = t0 + (hours * 3600).toLong()
        val tiered = RateTable("EUR", listOf(RateLine.Tiered(listOf(Tier(60u, 200), Tier(180u, 500), Tier(null, 900)))), null)
        assertEq(quote(tiered, h(8.0), h(9.0)), Money(200, "EUR"), "an hour, tiered")
        assertEq(quote(tiered, t0 + 8 * 3600, t0 + 9 * 3600 + 60), Money(500, "EUR"), "a started minute counts")
        assertEq(quote(tiered, h(8.0), h(18.0)), Money(900, "EUR"), "the open tier")
        val incrementing = RateTable("EUR", listOf(RateLine.Incrementing(60u, 30u, 150, null)), null)
        assertEq(quote(incrementing, h(8.0), h(9.0)), Money(0, "EUR"), "the free hour")
        assertEq(quote(incrementing, h(8.0), h(10.25)), Money(450, "EUR"), "three started half hours")
        val capped = RateTable("EUR", listOf(RateLine.Flat(100), RateLine.Incrementing(0u, 60u, 200, null)), 1500)
        assertEq(quote(capped, h(8.0), h(10.0)), Money(500, "EUR"), "flat plus two hours")
        assertEq(quote(capped, h(8.0), h(20.0)), Money(1500, "EUR"), "capped")
        assertEq(quote(capped, h(8.0), h(58.0)), Money(3500, "EUR"), "two capped days and two hours")
        assertThrows<ParqException.Invalid>("a negative amount") { quote(RateTable("EUR", listOf(RateLine.Flat(-1)), null), h(8.0), h(9.0)) }
        assertThrows<ParqException.Invalid>("an empty window") { quote(capped, h(9.0), h(9.0)) }
        assertThrows<ParqException.Invalid>("not a currency") { quote(RateTable("EURO", listOf(), null), h(8.0), h(9.0)) }
    }

    test("a quote computed offline equals the server's quote for the same lot and window") {
        val client = server.client()
        val http = HttpClient.newHttpClient()
        val windows = listOf(window(1, 60), window(2, 135), window(3, 300), window(24, 26 * 60), window(30, 49 * 60), window(5, 7 * 24 * 60))
        var priced = 0
        for ((name, lotId) in server.lots) {
            val details = client.lot(lotId)
            val raw = http.send(
                HttpRequest.newBuilder(URI("${server.baseUrl}/api/v1/lots/$lotId")).build(),
                HttpResponse.BodyHandlers.ofString(),
            ).body()
            assertEq(rateTableFromJson(raw), details.lot.rates, "$name: the rate table from JSON and from the client")
            for ((start, end) in windows) {
                suspend fun outcome(block: suspend () -> Money): String =
                    try { block().let { "${it.minor} ${it.currency}" } } catch (e: ParqException) { e::class.simpleName!! }
                val online = outcome { client.quote(lotId, start, end).price }
                assertEq(outcome { quoteLot(details.lot, start, end) }, online, "$name [$start, $end): the lot record")
                assertEq(outcome { quoteJson(raw, start, end) }, online, "$name [$start, $end): the server's JSON")
                if (online[0].isDigit()) {
                    assertEq(outcome { quote(details.lot.rates, start, end) }, online, "$name [$start, $end): the rate table")
                    assertEq(outcome { client.availability(lotId, start, end).price }, online, "$name [$start, $end): availability's price")
                    priced++
                }
            }
        }
        expect(priced >= 12) { "most windows are priced ($priced)" }
    }

    test("a driver signs up, holds, pays, receives the pass and a live event for its reservation") {
        val driver = server.driver("journey")
        val me = driver.me()
        assertEq(me.role, Role.DRIVER, "role")
        val events = Events()
        val live = driver.live(LiveOptions(driver = true), events)
        val lot = server.lot("Eleftheria")
        val (start, end) = window(0, 120)
        val found = driver.search(35.1706, 33.3606, 500.0, start, end)
        expect(found.any { it.lot.id == lot }) { "search finds the lot: $found" }
        val held = driver.hold(lot, start, end, SpotChoice.Pooled(SpotFilter(ev = true)))
        assertEq(held.state, ReservationState.HELD, "state after the hold")
        val checkout = driver.checkout(held.id)
        assertEq(checkout.intent.amount, held.price, "the intent's amount")
        val paid = driver.payTestIntent(checkout.intent.id)
        assertEq(paid.reservation.state, ReservationState.CONFIRMED, "state after paying")
        assertEq(driver.reservation(held.id).state, ReservationState.CONFIRMED, "state read again")
        expect(driver.reservations().any { it.id == held.id }) { "listed among the driver's reservations" }

        // The live event of the confirmation, through the callback.
        val kinds = mutableListOf<EventKind>()
        while (EventKind.CONFIRMED !in kinds) {
            when (val e = events.next() ?: fail("no live event within 15 s; got $kinds")) {
                is LiveEvent.Reservation -> if (e.event.reservationId == held.id) kinds += e.event.kind
                is LiveEvent.Disconnected, is LiveEvent.Reconnected -> {}
                else -> fail("unexpected $e")
            }
        }
        assertEq(kinds, listOf(EventKind.HELD, EventKind.PAYMENT_STARTED, EventKind.CONFIRMED), "the driver's events, in order")

        // The pass: its text verifies offline, and renders.
        val pass = driver.pass(held.id)
        val keys = driver.passKeys()
        val claims = verifyPass(pass.text, keys)
        assertEq(claims.reservationId, held.id, "the pass's reservation")
        assertEq(claims.lotId, lot, "the pass's lot")
        val png = driver.passPng(held.id)
        expect(png.size > 100 && png[0] == 0x89.toByte() && png[1] == 'P'.code.toByte()) { "a PNG from the server" }
        val local = passQrPng(pass.text, 4u)
        expect(local[0] == 0x89.toByte() && local[1] == 'P'.code.toByte()) { "a PNG rendered offline" }
        expect(passQrSvg(pass.text, 256u).contains("<svg")) { "an SVG rendered offline" }

        // At the barrier: the server decides online, and an offline gate with the synced keys
        // and revocations alike.
        val gateClient = server.client().withApiKey(server.gateKey)
        val now = System.currentTimeMillis() / 1000
        assertEq(code(gateClient.scan(pass.text, lot, Direction.ENTRY, "north-1", "kotlin-1")), "allow", "online entry")
        assertEq(code(gateClient.scan(pass.text, lot, Direction.ENTRY, "north-1", "kotlin-1")), "replayed", "the same reading again")
        val gate = GateVerifier(keys, 900, ReentryPolicy.NOT_ALLOWED)
        gate.applyRevocations(gateClient.revocations(gate.revocationVersion()))
        assertEq(code(gate.scan(pass.text, lot, Direction.ENTRY, now, "kotlin-2")), "allow", "offline entry")
        assertEq(code(gate.scan(pass.text, lot, Direction.ENTRY, now + 1, "kotlin-3")), "already_inside", "offline, again")
        live.stop()
        expect(live.isFinished()) { "the handle is finished once stopped" }
        live.close()
    }

    test("login with a TOTP code once two-factor authentication is on") {
        val c = server.client()
        val email = "totp-${UUID.randomUUID()}@kotlin.parq.test"
        c.register(email, PASSWORD)
        c.login(email, PASSWORD)
        val enrolment = c.enrolTotp()
        val step = System.currentTimeMillis() / 1000 / 30
        val recovery = c.confirmTotp(totp(enrolment.secret, step))
        expect(recovery.isNotEmpty()) { "recovery codes" }
        val fresh = server.client()
        assertThrows<ParqException.MfaRequired>("login without the code") { fresh.login(email, PASSWORD) }
        assertThrows<ParqException.Unauthorized>("login with a wrong code") { fresh.login(email, PASSWORD, "000000".takeIf { it != totp(enrolment.secret, step + 1) } ?: "111111") }
        val session = fresh.login(email, PASSWORD, totp(enrolment.secret, step + 1))
        expect(session.user.mfaEnabled) { "MFA is on" }
        assertEq(fresh.token(), session.token, "the client keeps the token")
        val other = server.client()
        other.loginWithRecoveryCode(email, PASSWORD, recovery.first())
        assertEq(other.me().email, email, "logged in with a recovery code")
    }

    test("a hold retried with the same idempotency key is made once, then extended") {
        val driver = server.driver("retry")
        val lot = server.lot("Eleftheria")
        val (start, end) = window(36, 60)
        val key = newIdempotencyKey()
        val first = driver.holdWithKey(lot, start, end, SpotChoice.Pooled(SpotFilter()), key)
        val again = driver.holdWithKey(lot, start, end, SpotChoice.Pooled(SpotFilter()), key)
        expect(!first.replayed && again.replayed) { "the second answer is a replay: $first / $again" }
        assertEq(again.reservation.id, first.reservation.id, "the same reservation")
        assertThrows<ParqException.IdempotencyMismatch>("the key with another request") {
            driver.holdWithKey(lot, start, end + 900, SpotChoice.Pooled(SpotFilter()), key)
        }
        // Extended by a quarter hour, repriced as the offline quote says.
        val extended = driver.extend(first.reservation.id, end + 900)
        assertEq(extended.window, TimeWindow(start, end + 900), "the new window")
        assertEq(extended.price, quote(driver.lot(lot).lot.rates, start, end + 900), "repriced")
        assertEq(driver.cancel(first.reservation.id).reservation.id, first.reservation.id, "released")
    }

    test("two clients race for one spot and exactly one gets a Conflict") {
        val lot = server.lot("Limassol Marina")
        val spot = server.client().lot(lot).spots.first().id
        val (start, end) = window(48, 120)
        val drivers = listOf(server.driver("racer-a"), server.driver("racer-b"))
        val outcomes = coroutineScope {
            drivers.map { d ->
                async(Dispatchers.Default) {
                    try { d.hold(lot, start, end, SpotChoice.Named(spot)) } catch (e: ParqException) { e }
                }
            }.awaitAll()
        }
        val won = outcomes.filterIsInstance<Reservation>()
        val lost = outcomes.filterIsInstance<ParqException.Conflict>()
        assertEq(won.size, 1, "winners ($outcomes)")
        assertEq(lost.size, 1, "conflicts ($outcomes)")
        expect(lost[0].reason == ConflictReason.SPOT_TAKEN || lost[0].reason == ConflictReason.CLAIMED) { "why: ${lost[0].reason}" }
        assertEq(won[0].spotId, spot, "the named spot")
    }

    test("a dropped live connection resumes without losing an event") {
        val lot = server.lot("Limassol Old Port")
        val churner = server.driver("churn")
        val (start, end) = window(72, 60)
        val live = ArrayDeque<String>()
        suspend fun step(): Pair<String, EventKind> =
            if (live.size < 2) {
                val r = churner.hold(lot, start, end, SpotChoice.Pooled(SpotFilter()))
                live.addLast(r.id)
                r.id to EventKind.HELD
            } else {
                val id = live.removeFirst()
                churner.cancel(id)
                id to EventKind.CANCELLED
            }
        Proxy(server.baseUrl).use { proxy ->
            val watcher = ParqClient(proxy.url, quick())
            val events = Events()
            val handle = watcher.live(LiveOptions(lots = listOf(lot), reconnectInitialMs = 50uL, reconnectMaxMs = 200uL), events)
            val notices = mutableListOf<LiveEvent>()
            val (id0, kind0) = step()
            val first = events.nextLot(notices)
            assertEq(first.reservationId to first.kind, id0 to kind0, "the first event")
            var seq = first.seq

            // The connection is cut, and new ones are refused for a while; meanwhile three changes.
            proxy.refusing = true
            proxy.sever()
            val missed = (1..3).map { step() }
            delay(300)
            proxy.refusing = false
            for ((id, kind) in missed) {
                val e = events.nextLot(notices)
                seq += 1u
                assertEq(e.seq, seq, "events in order, none lost or repeated")
                assertEq(e.reservationId to e.kind, id to kind, "event $seq")
            }
            val (id4, kind4) = step()
            val e4 = events.nextLot(notices)
            assertEq(Triple(e4.seq, e4.reservationId, e4.kind), Triple(seq + 1u, id4, kind4), "live again")
            expect(notices.any { it is LiveEvent.Disconnected }) { "the outage was said: $notices" }
            expect(notices.any { it is LiveEvent.Reconnected }) { "the resumption was said: $notices" }

            // Closing the handle stops the updates.
            handle.close()
            step()
            val after = events.next(500)
            expect(after == null) { "nothing after close(), got $after" }
        }
        live.forEach { churner.cancel(it) }
    }

    test("a truncated or altered QR text or an unknown key id is a typed exception, never a crash") {
        val v = vectors
        val keysJson = toJson(v["public_keys"])
        val passes = v["passes"].obj()
        val mine = passes.str("mine")
        val truncated = assertThrows<ParqException.InvalidPass>("truncated") { verifyPassJson(mine.dropLast(7), keysJson) }
        assertEq(truncated.fault, PassFault.MALFORMED, "truncated: fault")
        val altered = assertThrows<ParqException.InvalidPass>("altered") { verifyPassJson(passes.str("tampered"), keysJson) }
        assertEq(altered.fault, PassFault.BAD_SIGNATURE, "altered: fault")
        val forged = assertThrows<ParqException.InvalidPass>("forged") { verifyPassJson(passes.str("forged"), keysJson) }
        assertEq(forged.fault, PassFault.BAD_SIGNATURE, "forged: fault")
        val unknown = assertThrows<ParqException.InvalidPass>("unknown key") { verifyPassJson(passes.str("unknown_key"), keysJson) }
        assertEq(unknown.fault to unknown.keyId, PassFault.UNKNOWN_KEY to 7u, "unknown key: fault and key id")
        for (bad in listOf("", "NOT A PASS", "ééé", mine + mine, mine.substring(0, 3), "\u0000\u0001")) {
            assertThrows<ParqException.InvalidPass>("garbage ${bad.take(12)}") { verifyPassJson(bad, keysJson) }
        }
        assertThrows<ParqException.Invalid>("a QR of text a pass never has") { passQrPng("é", 4u) }
        assertThrows<ParqException.Invalid>("a QR scale out of range") { passQrPng(mine, 0u) }
        // At a gate, a bad pass is a refusal, not an exception.
        val gate = GateVerifier.fromKeysJson(keysJson, 900, ReentryPolicy.NOT_ALLOWED)
        val lot = v.str("lot_id")
        val at = v["mine"].obj().long("start_epoch_seconds")
        assertEq(code(gate.scan(mine.dropLast(7), lot, Direction.ENTRY, at)), "invalid", "a truncated pass at the gate")
        assertEq(code(gate.scan(passes.str("unknown_key"), lot, Direction.ENTRY, at)), "unknown_key", "an unknown key at the gate")
        assertThrows<ParqException.InvalidPass>("verify at the gate") { gate.verify(passes.str("tampered")) }
    }

    test("malformed JSON and bad arguments are typed exceptions") {
        val keysJson = toJson(vectors["public_keys"])
        for (bad in listOf("{", "[]x", "{\"keys\": 3}", "[{\"id\": 1, \"public_key\": \"zz\"}]", "null")) {
            val e = assertThrows<ParqException.Invalid>("keys $bad") { GateVerifier.fromKeysJson(bad, 900, ReentryPolicy.NOT_ALLOWED) }
            assertEq(e.field, "public_keys", "the field named")
        }
        assertThrows<ParqException.Invalid>("a key that is not hex") { GateVerifier(listOf(PublicKeyRecord(1u, "xyz")), 900, ReentryPolicy.ALLOWED) }
        assertThrows<ParqException.Invalid>("a negative grace") { GateVerifier.fromKeysJson(keysJson, -1, ReentryPolicy.ALLOWED) }
        val gate = GateVerifier.fromKeysJson(keysJson, 900, ReentryPolicy.NOT_ALLOWED)
        for (bad in listOf("nope", "{}", "{\"from\": 0, \"to\": 1, \"revocations\": []}", "{\"from\": 5, \"to\": 6, \"revocations\": []}")) {
            val e = assertThrows<ParqException.Invalid>("revocations $bad") { gate.applyRevocationsJson(bad) }
            assertEq(e.field, "revocations", "the field named")
        }
        assertEq(gate.revocationVersion(), 0uL, "nothing applied")
        assertThrows<ParqException.Invalid>("a lot id that is not a UUID") { gate.scan("X", "lot-7", Direction.ENTRY, 0) }
        assertThrows<ParqException.Invalid>("a time out of range") { gate.scan("X", UUID.randomUUID().toString(), Direction.ENTRY, Long.MAX_VALUE) }
        assertThrows<ParqException.Invalid>("a saved state that is not one") { GateVerifier.restore("{\"format\": \"other\"}") }
        assertThrows<ParqException.Invalid>("a lot that is not JSON") { quoteJson("{\"lot\": ", 0, 3600) }
        assertThrows<ParqException.Invalid>("JSON that is no lot") { quoteJson("{\"name\": \"x\"}", 0, 3600) }
        assertThrows<ParqException.Invalid>("a base URL that is not http") { ParqClient("ftp://example.com") }
        // Checked before anything is sent: no server needed.
        val nowhere = ParqClient("http://127.0.0.1:9", ClientOptions(maxRetries = 0u))
        assertThrows<ParqException.Invalid>("a reservation id that is not a UUID") { nowhere.reservation("42") }
        assertThrows<ParqException.Invalid>("a lot id that is not a UUID") { nowhere.live(LiveOptions(lots = listOf("x")), Events()) }
        assertThrows<ParqException.Invalid>("a spot id that is not a UUID") {
            nowhere.hold(UUID.randomUUID().toString(), 0, 3600, SpotChoice.Named("spot 7"))
        }
        assertThrows<ParqException.Transport>("nobody listening") { nowhere.quote(UUID.randomUUID().toString(), 0, 3600) }
    }

    test("a malformed server answer is a typed exception, never a crash") {
        val lot = UUID.randomUUID().toString()
        val (start, end) = window(1, 60)
        val once = ClientOptions(maxRetries = 0u, timeoutMs = 5_000uL)
        val cases = listOf(
            http("200 OK", "application/json", "{not json") to "MalformedResponse",
            http("200 OK", "application/json", "{\"lot\": 3}") to "MalformedResponse",
            http("200 OK", "text/html", "<html>hello</html>") to "MalformedResponse",
            http("500 Internal Server Error", "text/plain", "oops") to "MalformedResponse",
            http("404 Not Found", "application/problem+json", "{\"code\": \"not_found\", \"detail\": \"no such lot\"}") to "NotFound",
            "this is not HTTP at all\r\n\r\n".toByteArray() to "Transport",
            null to "Transport",
        )
        for ((answer, expected) in cases) {
            Garbage(answer).use { g ->
                val c = ParqClient(g.url, once)
                val e = assertThrows<ParqException>("answer ${answer?.decodeToString()?.take(40)}") { c.quote(lot, start, end) }
                assertEq(e::class.simpleName, expected, "the exception for ${answer?.decodeToString()?.take(40)}")
            }
        }
        Garbage(http("200 OK", "application/json", "[1, 2")).use { g ->
            val e = assertThrows<ParqException.MalformedResponse>("keys") { ParqClient(g.url, once).passKeys() }
            assertEq(e.status, 200.toUShort(), "the status")
        }
        Garbage(http("404 Not Found", "text/html", "<html>no socket.io here</html>")).use { g ->
            assertThrows<ParqException>("live against a server without live updates") {
                ParqClient(g.url, once).live(LiveOptions(lots = listOf(lot), ackTimeoutMs = 3_000uL), Events())
            }
        }
    }

    test("the server's problems are typed exceptions") {
        val c = server.client()
        val email = "errors-${UUID.randomUUID()}@kotlin.parq.test"
        c.register(email, PASSWORD)
        assertThrows<ParqException.EmailTaken>("registering twice") { c.register(email, PASSWORD) }
        assertThrows<ParqException.Unauthorized>("a wrong password") { c.login(email, "wrong password, surely") }
        assertThrows<ParqException.Unauthorized>("reservations before login") { c.reservations() }
        c.login(email, PASSWORD)
        assertThrows<ParqException.NotFound>("an unknown lot") { c.lot(UUID.randomUUID().toString()) }
        val lot = server.lot("Eleftheria")
        val (start, end) = window(60, 60)
        val invalid = assertThrows<ParqException.Invalid>("a window off the quarter hour") { c.hold(lot, start + 420, end, SpotChoice.Pooled(SpotFilter())) }
        assertEq(invalid.field, "window", "the field named")
        assertThrows<ParqException.LimitExceeded>("a stay beyond the maximum") { c.quote(server.lot("Ledra"), start, start + 5 * 3600) }
        val held = c.hold(lot, start, end, SpotChoice.Pooled(SpotFilter()))
        val early = assertThrows<ParqException.InvalidTransition>("a pass before payment") { c.pass(held.id) }
        assertEq(early.reservationId, held.id, "the reservation named")
        assertThrows<ParqException.Forbidden>("a driver at a gate") { c.scan("X", lot, Direction.ENTRY, "north-1") }
        assertThrows<ParqException.NotFound>("paying an unknown intent") { c.payTestIntent("pi_nope") }
        c.cancel(held.id)
        assertEq(c.cancel(held.id).reservation.state, ReservationState.CANCELLED, "cancelling again answers the same")
        assertThrows<ParqException.InvalidTransition>("paying a cancelled hold") { c.checkout(held.id) }
    }
}

fun main() {
    registerTests()
    var passed = 0
    var failed = 0
    runBlocking {
        for ((name, body) in tests) {
            val started = System.nanoTime()
            try {
                withTimeout(120_000) { body() }
                passed++
                println("ok      $name (${(System.nanoTime() - started) / 1_000_000} ms)")
            } catch (e: Throwable) {
                failed++
                println("FAILED  $name: $e")
                e.printStackTrace(System.out)
            }
        }
    }
    if (serverLazy.isInitialized()) runCatching { server.stop() }
    println("kotlin: $passed passed, $failed failed")
    System.out.flush()
    exitProcess(if (failed == 0 && passed > 0) 0 else 1)
}
