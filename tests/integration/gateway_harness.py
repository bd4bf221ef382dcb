# The gateway tests' processes: test upstreams, stub servers, gateway processes, Redis, metrics.
import contextlib
import http.server
import json
import os
import re
import select
import signal
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from harness import JWT_SECRET, REPO, Server, aether_binary, clean_environment, free_port, mint
from upstream_server_test import Raw, ws_frame, ws_read  # noqa: F401  (re-exported for tests)

HERE = Path(__file__).resolve().parent
UPSTREAM_SCRIPT = HERE / "upstream_server.py"
REDIS_TEST_SERVER = REPO / "scripts" / "redis-test-server"
SECURITY_KEYS = (
    "AETHER_SERVICES_SECURITY_BCRYPT_COST",
    "AETHER_SERVICES_SECURITY_LOGIN_ADDRESS_LIMIT",
    "AETHER_SERVICES_SECURITY_LOGIN_FREE_FAILURES",
)
KONG_ORIGINAL = REPO / "src" / "services" / "gateway" / "testdata" / "kong-original.yaml"


def wait_until(predicate, timeout=10.0, interval=0.02, message="condition"):
    """Polls predicate until it returns a truthy value; returns it, or fails the test."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


def wait_for_window(length=60, margin=5.0):
    """Sleeps into the next fixed rate-limit window (aligned to the Unix epoch) when fewer than
    `margin` seconds are left in this one, so a burst of requests falls into a single window."""
    left = length - (time.time() % length)
    if left < margin:
        time.sleep(left + 0.05)


def access_token(sub="usr_gateway_test", roles=("user",), permissions=("tasks:read",), **extra):
    """An HS256 access token the gateway's jwt plugin accepts with the platform secret."""
    now = int(time.time())
    claims = {
        "sub": sub,
        "type": "access",
        "exp": now + 3600,
        "iat": now,
        "roles": list(roles),
        "permissions": list(permissions),
    }
    claims.update(extra)
    return mint(claims, JWT_SECRET)


# ---------------------------------------------------------------------------------------------
# Test upstreams (upstream_server.py)


class Upstream:
    """One upstream_server.py process; can be stopped and started again on the same port."""

    def __init__(self, name, port=0):
        self.name = name
        self.port = port
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, str(UPSTREAM_SCRIPT), "--port", str(self.port), "--name", self.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], 15)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("ready "):
            self.process.kill()
            raise RuntimeError(f"upstream {self.name} did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def authority(self):
        return f"127.0.0.1:{self.port}"

    def stats(self):
        return requests.get(self.base + "/stats", timeout=10).json()

    def reset(self):
        assert requests.post(self.base + "/stats/reset", timeout=10).json()["reset"] is True

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def kill(self):
        """SIGKILL: connections are reset, nothing is answered."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


# ---------------------------------------------------------------------------------------------
# Stub servers: behaviour that upstream_server.py does not have (fixed status, slow answers,
# a failing health path, hop-by-hop response headers), counting what they receive.


class Stub:
    """A threaded HTTP/1.1 server in this process. Every request is answered with `status`
    after `delay` seconds (the health path with `health_status`), carrying X-Upstream: name and
    any `extra_headers`; each request is recorded as (method, path, headers dict, body)."""

    def __init__(self, name="stub", status=200, delay=0.0, health_path="/health", health_status=200,
                 extra_headers=()):
        self.name = name
        self.status = status
        self.delay = delay
        self.health_path = health_path
        self.health_status = health_status
        self.extra_headers = list(extra_headers)
        self.requests = []
        self.health_probes = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path
                if path == stub.health_path:
                    with stub.lock:
                        stub.health_probes += 1
                    status, delay, extra = stub.health_status, 0.0, []
                else:
                    with stub.lock:
                        stub.requests.append(
                            (self.command, path, {k.lower(): v for k, v in self.headers.items()}, body)
                        )
                    status, delay, extra = stub.status, stub.delay, stub.extra_headers
                if delay:
                    time.sleep(delay)
                payload = json.dumps({"upstream": stub.name, "status": status}).encode()
                self.send_response(status)
                self.send_header("X-Upstream", stub.name)
                for name, value in extra:
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

        class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = ThreadingServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def authority(self):
        return f"127.0.0.1:{self.port}"

    def count(self):
        with self.lock:
            return len(self.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------
# Gateway processes


class Gateway:
    """One `aether serve --target=gateway` process reading `gateway.yaml` in its own directory."""

    def __init__(self, root, config_text, env=None, target="gateway", args=()):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.config_path = self.root / "gateway.yaml"
        overrides = {"AETHER_GATEWAY_CONFIG": str(self.config_path)}
        if target == "gateway":
            # The security module's keys are unknown to a gateway-only process (a config error).
            for key in SECURITY_KEYS:
                overrides[key] = None
        if config_text is None:
            overrides["AETHER_GATEWAY_CONFIG"] = None
        else:
            self.write_config(config_text)
        overrides.update(env or {})
        self.env = clean_environment(overrides)
        self.server = Server(self.root, self.data_dir, self.env, target=target, args=args)

    def write_config(self, text):
        """Replaces the file atomically (a reader never sees half of it)."""
        temporary = self.config_path.with_name(f".gateway.yaml.{uuid.uuid4().hex[:8]}")
        temporary.write_text(text)
        os.replace(temporary, self.config_path)

    def start(self):
        self.server.start()
        return self

    @property
    def base(self):
        return self.server.base

    @property
    def port(self):
        return self.server.port

    def url(self, path):
        return self.server.url(path)

    def log(self):
        return self.server.log()

    def log_records(self):
        records = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records

    def metrics(self):
        response = requests.get(self.url("/metrics"), timeout=10)
        assert response.status_code == 200, response.text
        return parse_metrics(response.text)

    def metric(self, name, **labels):
        """The value of one series (0 when absent)."""
        return metric_value(self.metrics(), name, **labels)

    def reloads(self, result):
        return self.metric("gateway_config_reloads_total", result=result)

    def sighup(self):
        self.server.process.send_signal(signal.SIGHUP)

    def reload(self, expect="ok", timeout=10):
        """SIGHUP, then waits until the reload counter for `expect` has gone up by one."""
        before = self.reloads(expect)
        self.sighup()
        wait_until(lambda: self.reloads(expect) >= before + 1, timeout,
                   message=f"a reload with result {expect}")
        return self.reloads(expect)

    def stop(self):
        try:
            self.server.terminate()
        finally:
            self.server.kill()


def parse_metrics(text):
    """Prometheus text → {(name, frozenset(labels.items())): value}."""
    series = {}
    line_re = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$")
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = line_re.match(line)
        if not match:
            continue
        labels = dict(label_re.findall(match.group(3) or ""))
        series[(match.group(1), frozenset(labels.items()))] = float(match.group(4))
    return series


def metric_value(series, name, **labels):
    return series.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def processes():
    """Collects upstreams, stubs and gateways started by a test and stops them afterwards."""
    started = []

    class Processes:
        def add(self, thing):
            started.append(thing)
            return thing

    yield Processes()
    for thing in reversed(started):
        with contextlib.suppress(Exception):
            thing.stop()


@pytest.fixture(scope="module")
def module_processes():
    started = []

    class Processes:
        def add(self, thing):
            started.append(thing)
            return thing

    yield Processes()
    for thing in reversed(started):
        with contextlib.suppress(Exception):
            thing.stop()


def closed_port():
    """A loopback port nobody listens on (connections are refused)."""
    return free_port()


# ---------------------------------------------------------------------------------------------
# Redis (scripts/redis-test-server)


class Redis:
    """A private redis-server on loopback; kill() and restart() keep the port."""

    def __init__(self, directory, port=0):
        self.directory = Path(directory)
        self.port = port
        self.start()

    def start(self):
        out = subprocess.run(
            [str(REDIS_TEST_SERVER), "start", str(self.directory), str(self.port)],
            capture_output=True, text=True, timeout=30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"redis-test-server start failed: {out.stderr}")
        self.port = int(out.stdout.strip().splitlines()[-1])
        return self

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def pid(self):
        return int((self.directory / "redis.pid").read_text().strip())

    def kill(self):
        """SIGKILL the server (an outage, not a shutdown); its directory stays for restart()."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            state = Path(f"/proc/{pid}/stat")
            with contextlib.suppress(OSError):
                if state.read_text().split()[2] == "Z":
                    break
            time.sleep(0.02)
        (self.directory / "redis.pid").unlink(missing_ok=True)

    def stop(self):
        subprocess.run([str(REDIS_TEST_SERVER), "stop", str(self.directory)], timeout=30)


__all__ = [
    "Gateway", "KONG_ORIGINAL", "Raw", "Redis", "Stub", "Upstream", "access_token",
    "aether_binary", "closed_port", "metric_value", "module_processes", "parse_metrics",
    "processes", "wait_for_window", "wait_until", "ws_frame", "ws_read",
]
