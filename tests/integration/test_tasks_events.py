# Every change of a task leaves its task.* event in the outbox, in the same transaction; a
# refused change leaves none. Envelopes are CloudEvents 1.0 with the contract's data fields.
import re

import pytest

from harness import RFC3339_UTC
from tasks_harness import tasks_dep  # noqa: F401 (fixture)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def dep(tasks_dep):
    return tasks_dep


@pytest.fixture(scope="module")
def alice(dep):
    return dep.caller()


def check_envelope(event, event_type, data_keys):
    assert event["specversion"] == "1.0"
    assert re.match(r"^evt_[0-9A-Z]{26}$", event["id"]), event["id"]
    assert event["source"] == "/aether/tasks"
    assert event["type"] == event_type
    assert RFC3339_UTC.match(event["time"]), event["time"]
    assert event["datacontenttype"] == "application/json"
    assert set(event["data"]) == set(data_keys), event["data"]
    assert RFC3339_UTC.match(event["data"]["timestamp"])


def test_create_emits_task_created_with_the_trace(dep, alice):
    response = alice.post(json={"title": "Evented", "priority": "high"},
                          headers={"traceparent": TRACEPARENT})
    assert response.status_code == 201
    task = response.json()
    events = dep.events(task["id"])
    assert len(events) == 1
    event = events[0]
    check_envelope(event, "task.created", {"task_id", "title", "priority", "created_by",
                                           "timestamp"})
    assert event["data"] == {
        "task_id": task["id"], "title": "Evented", "priority": "high",
        "created_by": alice.id, "timestamp": task["created_at"],
    }
    # The event belongs to the request's trace.
    assert TRACE_ID in event["traceparent"]


def test_update_emits_task_updated_with_the_changes(dep, alice):
    task = alice.create(title="Before", priority="low")
    response = alice.put(f"/{task['id']}", json={"title": "After", "priority": "low",
                                                 "tags": ["t"]})
    assert response.status_code == 200
    updated = response.json()
    events = dep.events(task["id"], "task.updated")
    assert len(events) == 1
    check_envelope(events[0], "task.updated", {"task_id", "changes", "updated_by", "timestamp"})
    assert events[0]["data"]["changes"] == {
        "title": {"from": "Before", "to": "After"},
        "tags": {"from": [], "to": ["t"]},
    }
    assert events[0]["data"]["updated_by"] == alice.id
    assert events[0]["data"]["timestamp"] == updated["updated_at"]
    # Nothing changed, nothing emitted.
    alice.put(f"/{task['id']}", json={"title": "After"})
    assert len(dep.events(task["id"], "task.updated")) == 1


def test_complete_emits_task_completed(dep, alice):
    task = alice.create()
    body = alice.post(f"/{task['id']}/complete").json()
    events = dep.events(task["id"], "task.completed")
    assert len(events) == 1
    check_envelope(events[0], "task.completed", {"task_id", "completed_by", "completion_time",
                                                 "completion_hours", "timestamp"})
    data = events[0]["data"]
    assert data["task_id"] == task["id"] and data["completed_by"] == alice.id
    assert data["completion_time"] == body["completed_at"]
    assert data["completion_hours"] >= 0
    assert [e["type"] for e in dep.events(task["id"])] == ["task.created", "task.completed"]


def test_completing_by_update_emits_updated_and_completed(dep, alice):
    task = alice.create()
    alice.put(f"/{task['id']}", json={"status": "completed"})
    assert [e["type"] for e in dep.events(task["id"])] == [
        "task.created", "task.updated", "task.completed"]


def test_comment_emits_task_commented(dep, alice):
    task = alice.create()
    comment = alice.post(f"/{task['id']}/comments", json={"text": "hello"}).json()
    events = dep.events(task["id"], "task.commented")
    assert len(events) == 1
    check_envelope(events[0], "task.commented", {"task_id", "comment_id", "user_id",
                                                 "timestamp"})
    assert events[0]["data"] == {
        "task_id": task["id"], "comment_id": comment["id"], "user_id": alice.id,
        "timestamp": comment["created_at"],
    }


def test_delete_emits_task_deleted(dep, alice):
    task = alice.create()
    assert alice.delete(f"/{task['id']}").status_code == 200
    events = dep.events(task["id"], "task.deleted")
    assert len(events) == 1
    check_envelope(events[0], "task.deleted", {"task_id", "deleted_by", "timestamp"})
    assert events[0]["data"]["deleted_by"] == alice.id


def test_refused_changes_leave_no_event(dep, alice):
    task = alice.create()
    path = f"/{task['id']}"
    before = len(dep.events())
    stranger = dep.caller()
    guest = dep.caller(roles=("guest",), permissions=["tasks:read"])
    refused = [
        alice.post(json={"title": ""}),                                   # 400
        alice.put(path, json={"status": "nope"}),                         # 400
        stranger.put(path, json={"title": "x"}),                          # 403
        stranger.delete(path),                                            # 403
        guest.post(path + "/comments", json={"text": "x"}),               # 403
        alice.put(path, json={"title": "x"}, headers={"If-Match": '"9"'}),  # 412
        alice.delete(path, headers={"If-Match": '"9"'}),                  # 412
        alice.post(path + "/complete", headers={"If-Match": '"9"'}),      # 412
        alice.post("/task_01J00000000000000000000000/comments", json={"text": "x"}),  # 404
        alice.delete("/task_01J00000000000000000000000"),                 # 404
    ]
    assert [r.status_code for r in refused] == [400, 400, 403, 403, 403, 412, 412, 412, 404, 404]
    assert alice.post(path + "/complete").status_code == 200
    assert alice.post(path + "/complete").status_code == 409
    events = dep.events()
    assert len(events) == before + 1
    assert events[-1]["type"] == "task.completed"


def test_one_event_per_change_in_order(dep, alice):
    task = alice.create()
    path = f"/{task['id']}"
    alice.put(path, json={"progress": 10})
    alice.post(path + "/comments", json={"text": "one"})
    alice.put(path, json={"progress": 20})
    alice.post(path + "/complete")
    alice.delete(path)
    assert [e["type"] for e in dep.events(task["id"])] == [
        "task.created", "task.updated", "task.commented", "task.updated", "task.completed",
        "task.deleted"]
