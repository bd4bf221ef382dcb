#!/usr/bin/env python3
# A dependable HTTP/1.1 test upstream for the gateway tests and benchmarks (standard library only).
"""Test upstream: python3 upstream_server.py --port 0 --name NAME [--port-file FILE]

Prints `ready PORT` on stdout once listening (and writes PORT to --port-file, atomically).
HTTP/1.1 keep-alive and pipelining are honoured; request bodies are read via Content-Length or
chunked transfer coding. Every response carries `X-Upstream: NAME`.

Endpoints (any other method/path: 200 JSON echo
  {"upstream", "method", "path" (raw, with query), "headers" (lower-case names, repeats joined
   with ", "), "body" (text, undecodable bytes replaced), "body_length"}):
  /status/<code>          that status (200..599) with {"upstream", "status"} (no body for 204/304)
  /delay/<ms>             waits ms (≤ 60000) then echoes
  /chunked?n=5&ms=100     Transfer-Encoding: chunked, n chunks "chunk i\\n" spaced by ms
  /sse?n=5&ms=100         text/event-stream, n events "data: i\\n\\n" spaced by ms, each flushed
  /ws                     RFC 6455 WebSocket: echoes text/binary frames (opcode and FIN kept),
                          answers ping with pong and close with close
  /big?bytes=N[&chunked=1] N bytes of big_content(N), written in 64 KiB pieces
  /stats                  GET: {"total", "paths": {path: n}, "methods", "connections_opened",
                          "connections_open", "bad_requests", "recent": [[method, raw path], ...]}
  /stats/reset            POST: zeroes the counters (neither /stats call is counted)
Options: --host (127.0.0.1), --idle-timeout SECONDS (120; also the time allowed for a header).
  /drop                   closes the connection without answering
  /upload                 streams the body; {"upstream", "length", "sha256"}
Malformed requests get 400 and the connection is closed.
"""
import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
import http
import json
import os
import re
import signal
import struct
import sys
import urllib.parse

MAX_HEADER_BYTES = 64 * 1024
MAX_ECHO_BODY = 64 * 1024 * 1024
MAX_WS_PAYLOAD = 16 * 1024 * 1024
MAX_DELAY_MS = 60_000
MAX_STREAM_ITEMS = 100_000
IDLE_TIMEOUT = 120.0  # also the header timeout; longer than any gateway's pool idle time
BODY_TIMEOUT = 60.0
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
PATTERN = bytes(range(251))  # a prime length, so 64 KiB pieces never line up with it


def big_content(n, offset=0):
    """The deterministic bytes /big?bytes=N sends: byte i is (i % 251)."""
    start = offset % len(PATTERN)
    repeats = (start + n) // len(PATTERN) + 1
    return (PATTERN * repeats)[start : start + n]


def unmask(data, mask):
    """XORs data with the repeated 4-byte mask (RFC 6455 §5.3), a whole integer at a time."""
    key = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(len(data), "big")


class BadRequest(Exception):
    pass


class Stats:
    def __init__(self):
        self.reset()
        self.connections_open = 0

    def reset(self):
        self.total = 0
        self.paths = collections.Counter()
        self.methods = collections.Counter()
        self.connections_opened = 0
        self.bad_requests = 0
        self.recent = collections.deque(maxlen=100)

    def count(self, method, raw_path, path):
        self.total += 1
        self.paths[path] += 1
        self.methods[method] += 1
        self.recent.append([method, raw_path])

    def as_json(self):
        return {
            "total": self.total,
            "paths": dict(self.paths),
            "methods": dict(self.methods),
            "connections_opened": self.connections_opened,
            "connections_open": self.connections_open,
            "bad_requests": self.bad_requests,
            "recent": list(self.recent),
        }


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (lower-case name, value)
        parsed = urllib.parse.urlsplit(target)
        self.path = parsed.path
        self.query = urllib.parse.parse_qs(parsed.query)

    def header(self, name):
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else None

    def header_tokens(self, name):
        value = self.header(name) or ""
        return {t.strip().lower() for t in value.split(",") if t.strip()}

    def wants_keep_alive(self):
        tokens = self.header_tokens("connection")
        if self.version == "HTTP/1.1":
            return "close" not in tokens
        return "keep-alive" in tokens

    def int_param(self, name, default, low, high):
        values = self.query.get(name)
        if not values:
            return default
        try:
            value = int(values[0])
        except ValueError as error:
            raise BadRequest(f"{name} must be an integer") from error
        if not low <= value <= high:
            raise BadRequest(f"{name} must be between {low} and {high}")
        return value


class Body:
    """The request body as a stream of pieces, via Content-Length or chunked coding."""

    def __init__(self, reader, request):
        self.reader = reader
        self.chunked = False
        self.remaining = 0
        self.done = False
        coding = request.header("transfer-encoding") or ""
        encodings = [t.strip().lower() for t in coding.split(",") if t.strip()]
        lengths = [v for k, v in request.headers if k == "content-length"]
        if encodings:
            if lengths:
                raise BadRequest("both Content-Length and Transfer-Encoding")
            if encodings != ["chunked"]:
                raise BadRequest("unsupported Transfer-Encoding")
            self.chunked = True
        elif lengths:
            values = {v.strip() for value in lengths for v in value.split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise BadRequest("invalid Content-Length")
            self.remaining = int(next(iter(values)))
        self.done = not self.chunked and self.remaining == 0

    async def _read_exactly(self, n):
        try:
            return await asyncio.wait_for(self.reader.readexactly(n), BODY_TIMEOUT)
        except asyncio.IncompleteReadError as error:
            raise BadRequest("body truncated") from error

    async def _read_line(self):
        try:
            line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), BODY_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            raise BadRequest("bad chunk framing") from error
        return line[:-2]

    async def pieces(self, piece_size=64 * 1024):
        while not self.done:
            if not self.chunked:
                piece = await self._read_exactly(min(piece_size, self.remaining))
                self.remaining -= len(piece)
                self.done = self.remaining == 0
                yield piece
                continue
            size_text = self._strip_extension(await self._read_line())
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_text):
                raise BadRequest("bad chunk size")
            size = int(size_text, 16)
            if size == 0:
                while await self._read_line():  # trailers, up to the empty line
                    pass
                self.done = True
                return
            while size:
                piece = await self._read_exactly(min(piece_size, size))
                size -= len(piece)
                yield piece
            if await self._read_exactly(2) != b"\r\n":
                raise BadRequest("chunk not followed by CRLF")

    @staticmethod
    def _strip_extension(line):
        return line.split(b";", 1)[0].strip()

    async def read_all(self, limit):
        parts = []
        total = 0
        async for piece in self.pieces():
            total += len(piece)
            if total > limit:
                raise BadRequest("body too large")
            parts.append(piece)
        return b"".join(parts)

    async def discard(self):
        async for _ in self.pieces():
            pass


class Connection:
    def __init__(self, server, reader, writer):
        self.server = server
        self.reader = reader
        self.writer = writer

    # -- writing ---------------------------------------------------------------------------------

    def head(self, request, status, headers, keep_alive):
        version = "HTTP/1.1"
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"{version} {status} {reason}", f"X-Upstream: {self.server.name}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if not keep_alive:
            lines.append("Connection: close")
        elif request is not None and request.version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def respond(
        self, request, status, body=b"", content_type="application/json", keep_alive=True, extra=()
    ):
        headers = list(extra)
        no_body = status in (204, 304) or 100 <= status < 200
        if not no_body:
            headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        self.head(request, status, headers, keep_alive)
        if not no_body and (request is None or request.method != "HEAD"):
            self.writer.write(body)
        await self.writer.drain()

    async def respond_json(self, request, status, value, keep_alive=True):
        await self.respond(request, status, json.dumps(value).encode(), keep_alive=keep_alive)

    async def stream(self, request, content_type, pieces, keep_alive, extra=()):
        """Sends pieces as they come: chunked on HTTP/1.1, close-delimited on HTTP/1.0."""
        chunked = request.version == "HTTP/1.1"
        keep_alive = keep_alive and chunked
        headers = [("Content-Type", content_type), *extra]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        self.head(request, 200, headers, keep_alive)
        await self.writer.drain()
        if request.method != "HEAD":
            async for piece in pieces:
                if chunked:
                    self.writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    self.writer.write(piece)
                await self.writer.drain()
            if chunked:
                self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()
        return keep_alive

    # -- reading ---------------------------------------------------------------------------------

    async def read_request(self):
        """The next request, or None when the peer closed the connection between requests."""
        try:
            block = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), self.server.idle_timeout)
        except asyncio.IncompleteReadError as error:
            if error.partial.strip():
                raise BadRequest("connection closed inside the header block") from error
            return None
        except asyncio.LimitOverrunError as error:
            raise BadRequest("header block too large") from error
        except asyncio.TimeoutError:
            return None
        lines = block[:-4].split(b"\r\n")
        while lines and not lines[0]:  # RFC 9112 §2.2: ignore empty lines before a request
            lines.pop(0)
        if not lines:
            raise BadRequest("empty request")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not TOKEN.match(parts[0]) or not parts[1]:
            raise BadRequest("bad request line")
        method, target, version = (p.decode("latin-1") for p in parts)
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise BadRequest("unsupported HTTP version")
        if not (target.startswith("/") or target == "*" or re.match(r"^https?://", target)):
            raise BadRequest("bad request target")
        if re.match(r"^https?://", target):
            split = urllib.parse.urlsplit(target)
            target = urllib.parse.urlunsplit(("", "", split.path or "/", split.query, ""))
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not TOKEN.match(name):
                raise BadRequest("bad header line")
            if b"\r" in value or b"\n" in value or b"\0" in value:
                raise BadRequest("bad header value")
            headers.append((name.decode("latin-1").lower(), value.strip(b" \t").decode("latin-1")))
        request = Request(method, target, version, headers)
        if version == "HTTP/1.1" and request.header("host") is None:
            raise BadRequest("missing Host")
        return request

    # -- dispatch --------------------------------------------------------------------------------

    async def run(self):
        stats = self.server.stats
        stats.connections_opened += 1
        stats.connections_open += 1
        try:
            while True:
                try:
                    request = await self.read_request()
                    if request is None:
                        return
                    if not await self.handle(request):
                        return
                except BadRequest as error:
                    stats.bad_requests += 1
                    with contextlib.suppress(Exception):
                        value = {"upstream": self.server.name, "error": str(error)}
                        await self.respond_json(None, 400, value, keep_alive=False)
                        await self.linger()
                    return
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            return
        finally:
            stats.connections_open -= 1
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def linger(self):
        """Half-closes, then drains what the client still sends for a moment: closing with unread
        input would reset the connection and could destroy the 400 before the client reads it."""
        self.writer.write_eof()
        deadline = asyncio.get_running_loop().time() + 1.0
        drained = 0
        while drained < 1 << 20:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            data = await asyncio.wait_for(self.reader.read(65536), remaining)
            if not data:
                return
            drained += len(data)

    async def handle(self, request):
        """Answers one request; False when the connection must close afterwards."""
        path = request.path
        if path not in ("/stats", "/stats/reset"):
            self.server.stats.count(request.method, request.target, path)
        body = Body(self.reader, request)
        if "100-continue" in request.header_tokens("expect") and not body.done and path != "/drop":
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await self.writer.drain()
        keep_alive = request.wants_keep_alive()

        if path == "/drop":
            self.writer.transport.abort()
            return False
        if path == "/ws":
            return await self.websocket(request, body)
        if path == "/upload":
            digest = hashlib.sha256()
            length = 0
            async for piece in body.pieces():
                digest.update(piece)
                length += len(piece)
            value = {"upstream": self.server.name, "length": length, "sha256": digest.hexdigest()}
            await self.respond_json(request, 200, value, keep_alive)
            return keep_alive

        if path == "/stats":
            await body.discard()
            await self.respond_json(request, 200, self.server.stats.as_json(), keep_alive)
            return keep_alive
        if path == "/stats/reset":
            await body.discard()
            if request.method != "POST":
                value = {"upstream": self.server.name, "error": "POST only"}
                await self.respond_json(request, 405, value, keep_alive)
                return keep_alive
            self.server.stats.reset()
            value = {"upstream": self.server.name, "reset": True}
            await self.respond_json(request, 200, value, keep_alive)
            return keep_alive

        match = re.fullmatch(r"/status/(\d{3})", path)
        if match:
            status = int(match.group(1))
            await body.discard()
            if not 200 <= status <= 599:
                raise BadRequest("status must be between 200 and 599")
            value = {"upstream": self.server.name, "status": status}
            await self.respond_json(request, status, value, keep_alive)
            return keep_alive

        if path == "/chunked" or path == "/sse":
            n = request.int_param("n", 5, 0, MAX_STREAM_ITEMS)
            ms = request.int_param("ms", 100, 0, MAX_DELAY_MS)
            await body.discard()
            fmt = b"chunk %d\n" if path == "/chunked" else b"data: %d\n\n"
            content_type = "text/plain" if path == "/chunked" else "text/event-stream"
            extra = [("Cache-Control", "no-cache")] if path == "/sse" else []
            return await self.stream(request, content_type, self.paced(fmt, n, ms), keep_alive, extra)

        if path == "/big":
            size = request.int_param("bytes", 0, 0, 1 << 40)
            chunked = request.int_param("chunked", 0, 0, 1) == 1
            await body.discard()
            if chunked:
                return await self.stream(request, "application/octet-stream", self.big(size), keep_alive)
            headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
            self.head(request, 200, headers, keep_alive)
            if request.method != "HEAD":
                async for piece in self.big(size):
                    self.writer.write(piece)
                    await self.writer.drain()
            await self.writer.drain()
            return keep_alive

        match = re.fullmatch(r"/delay/(\d{1,9})", path)
        if match:
            ms = int(match.group(1))
            if ms > MAX_DELAY_MS:
                raise BadRequest(f"delay must be at most {MAX_DELAY_MS} ms")
            await asyncio.sleep(ms / 1000)

        data = await body.read_all(MAX_ECHO_BODY)
        headers = {}
        for name, value in request.headers:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        value = {
            "upstream": self.server.name,
            "method": request.method,
            "path": request.target,
            "headers": headers,
            "body": data.decode("utf-8", errors="replace"),
            "body_length": len(data),
        }
        await self.respond_json(request, 200, value, keep_alive)
        return keep_alive

    @staticmethod
    async def paced(fmt, n, ms):
        for i in range(n):
            if i:
                await asyncio.sleep(ms / 1000)
            yield fmt % i

    @staticmethod
    async def big(size):
        sent = 0
        while sent < size:
            piece = big_content(min(64 * 1024, size - sent), sent)
            sent += len(piece)
            yield piece

    # -- WebSocket -------------------------------------------------------------------------------

    async def websocket(self, request, body):
        key = request.header("sec-websocket-key") or ""
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            valid_key = False
        if (
            request.method != "GET"
            or request.version != "HTTP/1.1"
            or "websocket" not in request.header_tokens("upgrade")
            or "upgrade" not in request.header_tokens("connection")
            or request.header("sec-websocket-version") != "13"
            or not valid_key
            or not body.done
        ):
            raise BadRequest("bad WebSocket handshake")
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        self.head(
            request,
            101,
            [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)],
            keep_alive=True,
        )
        await self.writer.drain()
        while True:
            try:
                first, second = await self.reader.readexactly(2)
            except asyncio.IncompleteReadError:
                return False
            fin, opcode = first & 0x80, first & 0x0F
            masked, length = second & 0x80, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            if not masked or length > MAX_WS_PAYLOAD or first & 0x70:
                await self.ws_send(0x8, struct.pack("!H", 1002))  # protocol error
                return False
            mask = await self.reader.readexactly(4)
            payload = unmask(await self.reader.readexactly(length), mask)
            if opcode == 0x8:
                await self.ws_send(0x8, payload[:2])  # echo the status code, as RFC 6455 §5.5.1 asks
                return False
            if opcode == 0x9:
                await self.ws_send(0xA, payload)
            elif opcode in (0x0, 0x1, 0x2):
                await self.ws_send(opcode, payload, fin=bool(fin))
            elif opcode != 0xA:
                await self.ws_send(0x8, struct.pack("!H", 1002))
                return False

    async def ws_send(self, opcode, payload, fin=True):
        first = (0x80 if fin else 0) | opcode
        if len(payload) < 126:
            header = struct.pack("!BB", first, len(payload))
        elif len(payload) < 1 << 16:
            header = struct.pack("!BBH", first, 126, len(payload))
        else:
            header = struct.pack("!BBQ", first, 127, len(payload))
        self.writer.write(header + payload)
        await self.writer.drain()


class Server:
    def __init__(self, name, idle_timeout):
        self.name = name
        self.idle_timeout = idle_timeout
        self.stats = Stats()

    async def serve(self, reader, writer):
        await Connection(self, reader, writer).run()


async def main_async(args):
    server = Server(args.name, args.idle_timeout)
    listener = await asyncio.start_server(
        server.serve, args.host, args.port, limit=MAX_HEADER_BYTES, backlog=4096, reuse_address=True
    )
    port = listener.sockets[0].getsockname()[1]
    if args.port_file:
        temporary = f"{args.port_file}.tmp{os.getpid()}"
        with open(temporary, "w") as out:
            out.write(f"{port}\n")
        os.replace(temporary, args.port_file)
    print(f"ready {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with listener:
        await stop.wait()


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 binds a free port")
    parser.add_argument("--name", default="upstream", help="reported as `upstream` and X-Upstream")
    parser.add_argument("--port-file", help="where to write the bound port")
    parser.add_argument(
        "--idle-timeout", type=float, default=IDLE_TIMEOUT, help="seconds an idle connection is kept"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
