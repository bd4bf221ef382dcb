# GET /api/v1/tasks/stats: totals, groups, completion rate and time, overdue, and its filters.
import datetime

import pytest

from harness import assert_error
from tasks_harness import tasks_dep  # noqa: F401 (fixture)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def hours_ago(hours):
    return iso(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours))


@pytest.fixture(scope="module")
def data(tasks_dep):
    dep = tasks_dep
    alice = dep.caller()
    bob = dep.caller()
    t = {}
    t["a1"] = alice.create(priority="high", due_date="2020-01-01")
    t["a2"] = alice.create(priority="low")
    t["a3"] = alice.create(priority="urgent", assignee=bob.id)
    t["a4"] = alice.create(priority="medium", due_date="2020-01-01")
    t["b1"] = bob.create(priority="high", due_date="2999-01-01")
    t["b2"] = bob.create(priority="low", assignee=alice.id, due_date="2020-06-01")
    assert alice.put(f"/{t['a2']['id']}", json={"status": "in_progress"}).status_code == 200
    # Completion time is measured from created_at: move the creations back before completing.
    dep.execute(f"UPDATE tasks SET created_at = '{hours_ago(10)}' WHERE id = '{t['a4']['id']}'")
    dep.execute(f"UPDATE tasks SET created_at = '{hours_ago(4)}' WHERE id = '{t['b1']['id']}'")
    assert alice.post(f"/{t['a4']['id']}/complete").status_code == 200
    assert bob.post(f"/{t['b1']['id']}/complete").status_code == 200
    # Fixed creation dates for the date-range filters.
    dep.execute(f"UPDATE tasks SET created_at = '2024-01-15T12:00:00.000Z' "
                f"WHERE id = '{t['a2']['id']}'")
    dep.execute(f"UPDATE tasks SET created_at = '2024-02-10T00:00:00.000Z' "
                f"WHERE id = '{t['b2']['id']}'")
    return alice, bob, t


def stats(caller, **params):
    response = caller.get("/stats", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_stats_over_everything(data):
    alice, _, _ = data
    body = stats(alice)
    assert set(body) == {"total", "by_status", "by_priority", "completion_rate",
                         "average_completion_time_hours", "overdue"}
    assert body["total"] == 6
    assert body["by_status"] == {"pending": 3, "in_progress": 1, "completed": 2, "blocked": 0}
    assert body["by_priority"] == {"low": 2, "medium": 1, "high": 2, "urgent": 1}
    assert body["completion_rate"] == pytest.approx(33.33)
    assert body["average_completion_time_hours"] == pytest.approx(7.0, abs=0.05)
    # a1 and b2 are past due and open; a4 is past due but completed.
    assert body["overdue"] == 2


def test_stats_for_a_user_counts_created_and_assigned(data):
    alice, bob, _ = data
    mine = stats(alice, user_id=alice.id)
    assert mine["total"] == 5
    assert mine["by_status"]["completed"] == 1
    assert mine["completion_rate"] == pytest.approx(20.0)
    assert mine["average_completion_time_hours"] == pytest.approx(10.0, abs=0.05)
    assert mine["overdue"] == 2
    bobs = stats(alice, user_id=bob.id)
    assert bobs["total"] == 3
    assert bobs["by_priority"] == {"low": 1, "medium": 0, "high": 1, "urgent": 1}
    assert bobs["overdue"] == 1


def test_stats_for_nobody_are_zero(data):
    alice, _, _ = data
    assert stats(alice, user_id="usr_nobody") == {
        "total": 0,
        "by_status": {"pending": 0, "in_progress": 0, "completed": 0, "blocked": 0},
        "by_priority": {"low": 0, "medium": 0, "high": 0, "urgent": 0},
        "completion_rate": 0,
        "average_completion_time_hours": 0,
        "overdue": 0,
    }


@pytest.mark.parametrize(
    "params, total",
    [
        ({"start_date": "2024-01-01", "end_date": "2024-01-31"}, 1),
        ({"end_date": "2024-01-15"}, 1),
        ({"end_date": "2024-01-14"}, 0),
        ({"start_date": "2024-01-16", "end_date": "2024-02-10"}, 1),
        ({"start_date": "2024-01-01", "end_date": "2024-02-09T23:59:59Z"}, 1),
        ({"start_date": "2024-01-01", "end_date": "2024-02-10T00:00:00Z"}, 2),
        ({"start_date": "2024-01-15T12:00:00.001Z"}, 5),
        ({"start_date": "2024-01-01T00:00:00+01:00", "end_date": "2024-12-31"}, 2),
    ],
)
def test_stats_date_range(data, params, total):
    alice, _, _ = data
    assert stats(alice, **params)["total"] == total


@pytest.mark.parametrize(
    "params, fields",
    [
        ({"start_date": "yesterday"}, ["start_date"]),
        ({"end_date": "2024-02-30"}, ["end_date"]),
        ({"start_date": "2024-02-01", "end_date": "2024-01-01"}, ["end_date"]),
        ({"start_date": "x", "end_date": "y"}, ["start_date", "end_date"]),
        ({"user_id": "u" * 201}, ["user_id"]),
    ],
)
def test_stats_rejects_bad_parameters(data, params, fields):
    alice, _, _ = data
    error = assert_error(alice.get("/stats", params=params), 400, "VALIDATION_ERROR",
                         fields=fields)
    assert sorted(d["field"] for d in error["details"]) == sorted(fields)


def test_stats_needs_tasks_read(tasks_dep):
    outsider = tasks_dep.caller(permissions=["ai:use"])
    assert_error(outsider.get("/stats"), 403, "FORBIDDEN")
    reader = tasks_dep.caller(roles=("guest",), permissions=["tasks:read"])
    assert reader.get("/stats").status_code == 200
