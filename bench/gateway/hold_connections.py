#!/usr/bin/env python3
# Opens N keep-alive connections, one request on each, and holds them open (for RSS measurements).
"""Usage: hold_connections.py PORT N SECONDS [--header 'Name: value']...

Opens N connections to 127.0.0.1:PORT, sends `GET / HTTP/1.1` on each, reads each response in
full (Content-Length or chunked) and keeps every connection open and idle for SECONDS. Prints
`held N statuses={...}` once all responses are in, then `released` when it closes them; exits
1 if a connection failed or was closed by the server while held.
"""
import argparse
import collections
import resource
import selectors
import socket
import sys
import time


def read_response(sock, buffer):
    """Reads one response from sock; returns (status, remaining bytes)."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the response head")
        buffer += data
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        while True:
            while b"\r\n" not in buffer:
                buffer += sock.recv(65536)
            size_line, _, buffer = buffer.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(buffer) < size + 2:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed inside a chunk")
                buffer += data
            buffer = buffer[size + 2 :]
            if size == 0:  # no trailers expected from the bench targets
                return status, buffer
    length = int(headers.get("content-length", "0"))
    while len(buffer) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed inside the body")
        buffer += data
    return status, buffer[length:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.count + 1024), hard))

    request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{h}\r\n" for h in args.header) + "\r\n"
    sockets = []
    statuses = collections.Counter()
    for _ in range(args.count):
        sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
        sock.sendall(request.encode())
        sockets.append(sock)
    for sock in sockets:  # sent all first, so the server holds all of them at once
        status, rest = read_response(sock, b"")
        if rest:
            raise RuntimeError("unexpected bytes after the response")
        statuses[status] += 1
    print(f"held {len(sockets)} statuses={dict(statuses)}", flush=True)

    # Watch the idle connections: a server closing one would make the measurement meaningless.
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    closed = 0
    deadline = time.monotonic() + args.seconds
    while (remaining := deadline - time.monotonic()) > 0:
        for key, _ in selector.select(remaining):
            selector.unregister(key.fileobj)
            closed += 1
    for sock in sockets:
        sock.close()
    print(f"released{f' ({closed} closed by the server early)' if closed else ''}", flush=True)
    return 1 if closed else 0


if __name__ == "__main__":
    sys.exit(main())
