# SIGTERM with pooled upstream connections, a response still streaming and an open WebSocket:
# the gateway exits 0 (under the ASan binary a use-after-free on the way out fails this test).
import socket
import threading
import time

import requests

from gateway_harness import Gateway, Upstream


def test_sigterm_with_pooled_and_streaming_upstreams_exits_cleanly(tmp_path):
    upstream = Upstream("pool")
    gateway = None
    try:
        config = f"""
_format_version: "3.0"
services:
  - name: pool
    url: http://127.0.0.1:{upstream.port}
    routes:
      - paths: [/]
"""
        gateway = Gateway(tmp_path / "gw", config).start()
        # Several pooled keep-alive connections to the upstream.
        def burst():
            with requests.Session() as session:
                for _ in range(20):
                    assert session.get(gateway.url("/echo"), timeout=10).status_code == 200

        threads = [threading.Thread(target=burst) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        # A response still streaming when the signal arrives.
        stream = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
        stream.sendall(b"GET /sse?n=50&ms=100 HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert b"200" in stream.recv(4096)

        code = gateway.server.terminate(timeout=30)
        log = gateway.log()
        assert code == 0, f"exit {code}\n{log[-20000:]}"
        assert "AddressSanitizer" not in log and "runtime error" not in log, log[-20000:]
        stream.close()
    finally:
        if gateway is not None:
            gateway.stop()
        upstream.stop()
