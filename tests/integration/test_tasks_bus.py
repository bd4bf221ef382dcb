# The tasks service on a real RabbitMQ: task.created as an amqplib consumer sees it, and the
# outbox's promise under faults (issue #4): a broker stopped in the middle of 1 000 creations
# loses no event, and a tasks process killed mid-burst leaves an event for exactly the tasks that
# exist.
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bus_harness import AmqpConsumer
from harness import RFC3339_UTC
from tasks_harness import TasksDeployment


@pytest.fixture
def tasks(backend, cluster, rabbit_broker, tmp_path_factory):
    deployment = TasksDeployment(
        backend, tmp_path_factory.mktemp(f"tasks-bus-{backend}"), cluster,
        env={"AETHER_BUS_URL": rabbit_broker.url},
    )
    deployment.start()
    yield deployment
    deployment.stop()


def durable_queue(broker, pattern="task.created"):
    """A durable queue of the test's own: it collects through outages and restarts."""
    name = "tasks-test-" + uuid.uuid4().hex[:10]
    AmqpConsumer(broker.url, pattern, 1, durable_queue=name).close()
    return name


def create_many(caller, titles, workers=8):
    """Creates a task per title concurrently; returns {title: id} of those answered 201."""
    created = {}
    lock = threading.Lock()
    session_local = threading.local()

    def create(title):
        session = getattr(session_local, "session", None)
        if session is None:
            session = session_local.session = requests.Session()
        try:
            response = session.post(caller.deployment.api(""), headers=caller.headers(),
                                    json={"title": title, "priority": "medium"}, timeout=30)
        except requests.RequestException:
            return
        if response.status_code == 201:
            with lock:
                created[title] = response.json()["id"]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(create, titles))
    return created


def test_task_created_reaches_an_amqplib_consumer(rabbit_broker, tasks):
    consumer = AmqpConsumer(rabbit_broker.url, "task.*", 1)
    try:
        alice = tasks.caller()
        response = alice.post(json={"title": "Ship the bus", "priority": "urgent",
                                    "tags": ["bus"]})
        assert response.status_code == 201, response.text
        task = response.json()
        [message] = consumer.messages(1)
    finally:
        consumer.close()
    body = message["body"]
    assert message["routing_key"] == "task.created"
    assert message["properties"] == {"content_type": "application/json", "delivery_mode": 2,
                                     "message_id": body["id"], "type": "task.created"}
    assert body["specversion"] == "1.0"
    assert re.match(r"^evt_[0-9A-Z]{26}$", body["id"])
    assert body["source"] == "/aether/tasks"
    assert body["type"] == "task.created"
    assert RFC3339_UTC.match(body["time"])
    assert body["datacontenttype"] == "application/json"
    assert body["data"] == {"task_id": task["id"], "title": "Ship the bus", "priority": "urgent",
                            "created_by": alice.id, "timestamp": task["created_at"]}


def test_a_broker_stopped_mid_burst_loses_no_event(rabbit_broker, tasks):
    queue_name = durable_queue(rabbit_broker)
    alice = tasks.caller()
    titles = [f"outage-{i}" for i in range(1000)]
    created = create_many(alice, titles[:400])
    rabbit_broker.stop_keep()
    try:
        # Task creation does not depend on the broker: the outbox holds the events.
        created.update(create_many(alice, titles[400:]))
    finally:
        rabbit_broker.start_again()
    assert len(created) == 1000
    consumer = AmqpConsumer(rabbit_broker.url, "task.created", 100000, timeout_ms=300000,
                            durable_queue=queue_name)
    try:
        events = consumer.distinct(1000, timeout=120)
        assert not consumer.new_events_within(2, events), "more events than tasks"
    finally:
        consumer.close()
    assert sorted(m["body"]["data"]["task_id"] for m in events.values()) == sorted(
        created.values())


def test_a_tasks_process_killed_mid_burst_keeps_events_and_tasks_in_step(rabbit_broker, tasks):
    queue_name = durable_queue(rabbit_broker)
    alice = tasks.caller()
    killer = threading.Timer(0.5, tasks.server.kill)
    killer.start()
    try:
        created = create_many(alice, [f"kill-{i}" for i in range(3000)], workers=16)
    finally:
        killer.cancel()
    assert tasks.server.process.poll() is not None, "the burst ended before the kill"
    assert created, "no task was created before the kill"
    # The same database, a new process: its relay publishes what the killed one had not.
    tasks.start()
    stored = {row[0] for row in tasks.execute("SELECT id FROM tasks")}
    assert set(created.values()) <= stored, "a task answered 201 is missing"
    consumer = AmqpConsumer(rabbit_broker.url, "task.created", 100000, timeout_ms=300000,
                            durable_queue=queue_name)
    try:
        events = consumer.distinct(len(stored), timeout=120)
        assert not consumer.new_events_within(2, events), "an event for a task that does not exist"
    finally:
        consumer.close()
    assert {m["body"]["data"]["task_id"] for m in events.values()} == stored
