# A private RabbitMQ broker (scripts/rabbitmq-test-server) and the amqplib consumer of tests/node:
# the real broker and a client nobody here wrote.
import json
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from harness import REPO

RABBITMQ_TEST_SERVER = REPO / "scripts" / "rabbitmq-test-server"
NODE_DIR = REPO / "tests" / "node"


class RabbitBroker:
    """One broker for a test module; stop_keep/start_again keep its queues and messages."""

    def __init__(self):
        # Directly under /tmp: the Erlang node's socket paths must stay short.
        self.directory = Path(tempfile.mkdtemp(prefix="aether-rmq-"))
        self._run("start", timeout=120)
        self.url = self._run("url").strip()

    def _run(self, command, timeout=90):
        out = subprocess.run(
            [str(RABBITMQ_TEST_SERVER), command, str(self.directory)],
            capture_output=True, text=True, timeout=timeout,
        )
        if out.returncode != 0:
            raise RuntimeError(f"rabbitmq-test-server {command} failed: {out.stderr[-2000:]}")
        return out.stdout

    def stop_keep(self):
        self._run("stop-keep")

    def start_again(self):
        self._run("start", timeout=120)

    def stop(self):
        self._run("stop")


class AmqpConsumer:
    """tests/node/amqp-consume.mjs: an exclusive queue bound to aether.events with `pattern`."""

    def __init__(self, url, pattern, count, timeout_ms=60000, durable_queue=""):
        self.process = subprocess.Popen(
            ["node", str(NODE_DIR / "amqp-consume.mjs"), url, pattern, str(count),
             str(timeout_ms), durable_queue],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self.lines.get(timeout=30)
        if first != "ready":
            raise RuntimeError(f"amqp consumer did not start: {first!r} {self.process.stderr.read()}")

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _next(self, deadline):
        """The next delivery as a dict, or None once `deadline` passed or the consumer ended."""
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            line = self.lines.get(timeout=left)
        except queue.Empty:
            return None
        return None if line is None else json.loads(line)

    def messages(self, count, timeout=60):
        """The next `count` deliveries as dicts {routing_key, properties, body}."""
        received = []
        deadline = time.monotonic() + timeout
        while len(received) < count and (message := self._next(deadline)) is not None:
            received.append(message)
        if len(received) < count:
            raise AssertionError(
                f"got {len(received)} of {count} messages; consumer stderr: "
                f"{self.process.stderr.read() if self.process.poll() is not None else ''}"
            )
        return received

    def distinct(self, count, timeout=90):
        """Reads deliveries until `count` distinct event ids arrived (an idempotent consumer's
        view: redeliveries count once); returns {event id: message}."""
        seen = {}
        deadline = time.monotonic() + timeout
        while len(seen) < count and (message := self._next(deadline)) is not None:
            seen.setdefault(message["body"]["id"], message)
        if len(seen) < count:
            raise AssertionError(f"got {len(seen)} of {count} distinct events")
        return seen

    def new_events_within(self, seconds, seen):
        """Event ids not in `seen` that arrive within `seconds` (redeliveries of seen ones are
        expected after a crash and ignored)."""
        fresh = set()
        deadline = time.monotonic() + seconds
        while (message := self._next(deadline)) is not None:
            if message["body"]["id"] not in seen:
                fresh.add(message["body"]["id"])
        return fresh

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
