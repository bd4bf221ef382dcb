# The security service's events through a real RabbitMQ, read by amqplib (a client nobody here
# wrote) and by `aether events tail`; and the outbox keeping them through a broker outage.
import json
import queue
import re
import subprocess
import threading
import time
import uuid

import pytest
import requests

from bus_harness import AmqpConsumer
from harness import RFC3339_UTC, aether_binary, register, unique_email

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture(scope="module")
def broker(rabbit_broker):
    return rabbit_broker


@pytest.fixture(scope="module")
def security(broker, module_factory):
    return module_factory(env={"AETHER_BUS_URL": broker.url})


def check_envelope(message, event_type):
    body = message["body"]
    assert message["routing_key"] == event_type
    assert message["properties"] == {
        "content_type": "application/json",
        "delivery_mode": 2,
        "message_id": body["id"],
        "type": event_type,
    }
    assert body["specversion"] == "1.0"
    assert re.match(r"^evt_[0-9A-Z]{26}$", body["id"]), body["id"]
    assert body["source"] == "/aether/security"
    assert body["type"] == event_type
    assert RFC3339_UTC.match(body["time"]), body["time"]
    assert body["datacontenttype"] == "application/json"
    return body["data"]


def test_registration_and_logins_reach_an_amqplib_consumer(broker, security):
    consumer = AmqpConsumer(broker.url, "#", 3)
    try:
        email = unique_email("events")
        response = requests.post(
            security.api("/register"),
            json={"email": email, "password": "Sup3r-secret-pass", "name": "Events"},
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        user_id = response.json()["user_id"]
        ok = requests.post(security.api("/login"),
                           json={"email": email, "password": "Sup3r-secret-pass"}, timeout=30)
        assert ok.status_code == 200
        bad = requests.post(security.api("/login"),
                            json={"email": email, "password": "Wrong-passw0rd"}, timeout=30)
        assert bad.status_code == 401
        messages = consumer.messages(3)
    finally:
        consumer.close()
    # One relay publishes the outbox in commit order.
    assert [m["routing_key"] for m in messages] == [
        "user.registered", "auth.login.succeeded", "auth.login.failed"]
    registered = check_envelope(messages[0], "user.registered")
    assert TRACE_ID in messages[0]["body"]["traceparent"]
    assert registered["user_id"] == user_id
    assert registered["email"] == email
    assert registered["ip"] == "127.0.0.1"
    assert RFC3339_UTC.match(registered["timestamp"])
    succeeded = check_envelope(messages[1], "auth.login.succeeded")
    assert (succeeded["user_id"], succeeded["email"]) == (user_id, email)
    failed = check_envelope(messages[2], "auth.login.failed")
    assert failed["email"] == email
    assert failed["reason"] == "invalid_credentials"


def lines_of(stream):
    """A queue fed with the stream's lines by a thread (None at the end), so reads can time out."""
    lines = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_events_tail_prints_matching_events(broker, security):
    tail = subprocess.Popen(
        [str(aether_binary()), "events", "tail", "--type", "user.*", "--target=security",
         "--data-dir", str(security.data_dir)],
        cwd=security.root, env=security.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        logs, events = lines_of(tail.stderr), lines_of(tail.stdout)
        # The tail's queue is bound once it says it is ready.
        deadline = time.monotonic() + 30
        while True:
            line = logs.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "events tail exited early"
            if "events tail ready" in line:
                break
        register(security, email=unique_email("tail"))
        requests.post(security.api("/login"),
                      json={"email": "nobody@example.com", "password": "x"}, timeout=30)
        first = json.loads(events.get(timeout=30))
        assert first["type"] == "user.registered"
        assert first["specversion"] == "1.0"
    finally:
        tail.terminate()
        assert tail.wait(timeout=30) == 0


def test_an_outage_delays_events_and_loses_none(broker, security):
    # A durable queue of its own collects from now on, through the restart.
    durable_queue = "outage-test-" + uuid.uuid4().hex[:8]
    AmqpConsumer(broker.url, "user.registered", 1, durable_queue=durable_queue).close()
    emails = []
    broker.stop_keep()
    try:
        assert requests.get(security.url("/ready"), timeout=5).status_code == 503
        for _ in range(5):
            email = unique_email("outage")
            register(security, email=email)  # the API keeps working without the broker
            emails.append(email)
    finally:
        broker.start_again()
    consumer = AmqpConsumer(broker.url, "user.registered", 5, durable_queue=durable_queue)
    try:
        # The relay backs off at most 10 s between attempts; the bus reconnects within 5 s.
        messages = consumer.messages(5, timeout=60)
    finally:
        consumer.close()
    assert sorted(m["body"]["data"]["email"] for m in messages) == sorted(emails)
