# Every endpoint of the tasks service and its error paths (400/401/403/404/409/412), per backend.
import concurrent.futures
import re
import threading

import pytest
import requests

from harness import RFC3339_UTC, assert_error
from tasks_harness import BASE, READ_WRITE, access_token, tasks_dep  # noqa: F401 (fixture)

TASK_ID = re.compile(r"^task_[0-9A-HJKMNP-TV-Z]{26}$")
TASK_KEYS = {
    "id", "title", "description", "status", "priority", "category", "assignee", "due_date", "tags",
    "estimated_hours", "actual_hours", "progress", "created_by", "created_at", "updated_at",
    "completed_at", "completed_by", "version",
}
HISTORY_KEYS = {"action", "from", "to", "user_id", "timestamp"}


@pytest.fixture(scope="module")
def dep(tasks_dep):
    return tasks_dep


@pytest.fixture(scope="module")
def alice(dep):
    return dep.caller(roles=("user",))


@pytest.fixture(scope="module")
def bob(dep):
    return dep.caller(roles=("developer",))


@pytest.fixture(scope="module")
def guest(dep):
    return dep.caller(roles=("guest",), permissions=["tasks:read"])


@pytest.fixture(scope="module")
def admin(dep):
    return dep.caller(roles=("admin",), permissions=READ_WRITE + ["users:admin"])


def etag_of(response):
    return response.headers.get("ETag")


# ---------------------------------------------------------------- create


def test_create_returns_201_with_the_full_task(dep, alice):
    body = {
        "title": "Write the quarterly report",
        "description": "numbers and words",
        "priority": "high",
        "category": "reports",
        "due_date": "2030-03-31",
        "tags": ["finance", "q1"],
        "assignee": "usr_someone",
        "estimated_hours": 6.5,
    }
    response = alice.post(json=body)
    assert response.status_code == 201, response.text
    task = response.json()
    assert set(task) == TASK_KEYS
    assert TASK_ID.match(task["id"]), task["id"]
    assert task["status"] == "pending"
    assert task["created_by"] == alice.id
    assert RFC3339_UTC.match(task["created_at"]) and task["updated_at"] == task["created_at"]
    for key in ("title", "description", "priority", "category", "tags", "assignee",
                "estimated_hours"):
        assert task[key] == body[key], key
    assert task["due_date"] == "2030-03-31T00:00:00.000Z"
    assert task["progress"] == 0 and task["actual_hours"] is None
    assert task["completed_at"] is None and task["completed_by"] is None
    assert etag_of(response) == '"1"' and task["version"] == 1
    assert response.headers["Location"] == f"{BASE}/{task['id']}"


def test_create_with_only_a_title_fills_defaults(alice):
    task = alice.create(title="  Just a title  ")
    assert task["title"] == "Just a title"
    assert task["priority"] == "medium"
    assert task["description"] == ""
    assert task["tags"] == []
    for key in ("category", "assignee", "due_date", "estimated_hours"):
        assert task[key] is None, key


def test_create_normalizes_due_date_to_utc(alice):
    task = alice.create(due_date="2030-01-01T01:30:00.5+02:00")
    assert task["due_date"] == "2029-12-31T23:30:00.500Z"
    far = alice.create(due_date="2999-12-31T10:00:00Z")
    assert far["due_date"] == "2999-12-31T10:00:00.000Z"


def test_create_ignores_status_and_progress(alice):
    task = alice.create(status="completed", progress=80, actual_hours=3, id="task_mine")
    assert task["status"] == "pending" and task["progress"] == 0
    assert task["actual_hours"] is None and task["id"] != "task_mine"


def test_create_reports_every_bad_field(alice):
    response = alice.post(json={
        "title": "   ",
        "description": 5,
        "priority": "critical",
        "category": ["x"],
        "due_date": "2030-02-30",
        "tags": ["ok", 7, "a,b"],
        "assignee": True,
        "estimated_hours": -1,
    })
    error = assert_error(response, 400, "VALIDATION_ERROR", fields=[
        "title", "description", "priority", "category", "due_date", "tags[1]", "tags[2]",
        "assignee", "estimated_hours",
    ])
    assert len(error["details"]) == 9, error["details"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "title"),
        ({"title": None}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "t", "description": "d" * 10001}, "description"),
        ({"title": "t", "category": "c" * 101}, "category"),
        ({"title": "t", "assignee": "a" * 201}, "assignee"),
        ({"title": "t", "tags": ["t" * 51]}, "tags[0]"),
        ({"title": "t", "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"title": "t", "tags": "a,b"}, "tags"),
        ({"title": "t", "priority": "LOW"}, "priority"),
        ({"title": "t", "priority": None}, "priority"),
        ({"title": "t", "due_date": "next week"}, "due_date"),
        ({"title": "t", "due_date": "2030-01-01T10:00:00"}, "due_date"),
        ({"title": "t", "estimated_hours": "2"}, "estimated_hours"),
        ({"title": "t", "estimated_hours": 100001}, "estimated_hours"),
        ({"title": "a\u0000b"}, "title"),
    ],
)
def test_create_rejects_bad_values(alice, body, field):
    response = alice.post(json=body)
    error = assert_error(response, 400, "VALIDATION_ERROR", fields=[field])
    assert [d["field"] for d in error["details"]] == [field], error["details"]


@pytest.mark.parametrize("raw", ["not json", "[1,2]", '"title"', '{"title": "t",}', ""])
def test_create_rejects_a_body_that_is_not_a_json_object(alice, raw):
    response = alice.post(data=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "VALIDATION_ERROR", fields=["body"])


def test_create_counts_in_metrics(dep, alice):
    def created(priority):
        text = requests.get(dep.url("/metrics"), timeout=10).text
        match = re.search(rf'^tasks_created_total{{priority="{priority}"}} (\d+)', text, re.M)
        return int(match.group(1)) if match else 0

    before = created("urgent")
    alice.create(priority="urgent")
    alice.create(priority="urgent")
    assert created("urgent") == before + 2


# ---------------------------------------------------------------- get


def test_get_returns_task_with_comments_and_history(alice, bob):
    task = alice.create(priority="low")
    response = bob.get(f"/{task['id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == TASK_KEYS | {"comments", "history"}
    assert body["comments"] == []
    assert len(body["history"]) == 1
    created = body["history"][0]
    assert HISTORY_KEYS <= set(created)
    assert created["action"] == "created" and created["user_id"] == alice.id
    assert created["timestamp"] == task["created_at"]
    assert etag_of(response) == '"1"'


@pytest.mark.parametrize("task_id", ["task_01J00000000000000000000000", "nope", "usr_1"])
def test_get_unknown_task_is_404(alice, task_id):
    assert_error(alice.get(f"/{task_id}"), 404, "NOT_FOUND")


def test_stats_is_not_taken_for_an_id(alice):
    response = alice.get("/stats")
    assert response.status_code == 200, response.text
    assert "total" in response.json()


# ---------------------------------------------------------------- update


def test_update_changes_fields_and_records_history(alice):
    task = alice.create(title="Old title", priority="low", tags=["a"])
    response = alice.put(f"/{task['id']}", json={
        "title": "New title", "priority": "urgent", "status": "in_progress", "progress": 30,
        "actual_hours": 1.5, "tags": ["a", "b"], "category": "ops",
    })
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["title"] == "New title" and updated["priority"] == "urgent"
    assert updated["status"] == "in_progress" and updated["progress"] == 30
    assert updated["actual_hours"] == 1.5 and updated["tags"] == ["a", "b"]
    assert updated["category"] == "ops"
    assert updated["version"] == 2 and etag_of(response) == '"2"'
    assert updated["created_at"] == task["created_at"]
    assert updated["updated_at"] >= task["updated_at"]
    assert updated["description"] == task["description"]

    history = alice.get(f"/{task['id']}").json()["history"]
    changes = {entry.get("field"): entry for entry in history[1:]}
    assert set(changes) == {"title", "priority", "status", "progress", "actual_hours", "tags",
                            "category"}
    for entry in history[1:]:
        assert HISTORY_KEYS <= set(entry)
        assert entry["user_id"] == alice.id
        assert entry["timestamp"] == updated["updated_at"]
    assert changes["status"]["action"] == "status_changed"
    assert (changes["status"]["from"], changes["status"]["to"]) == ("pending", "in_progress")
    assert changes["title"]["action"] == "updated"
    assert (changes["title"]["from"], changes["title"]["to"]) == ("Old title", "New title")
    assert (changes["progress"]["from"], changes["progress"]["to"]) == (0, 30)
    assert (changes["tags"]["from"], changes["tags"]["to"]) == (["a"], ["a", "b"])
    assert (changes["category"]["from"], changes["category"]["to"]) == (None, "ops")
    assert (changes["actual_hours"]["from"], changes["actual_hours"]["to"]) == (None, 1.5)


def test_update_without_changes_keeps_version_and_history(alice):
    task = alice.create(title="Same", priority="high")
    response = alice.put(f"/{task['id']}", json={"title": "Same", "priority": "high", "foo": 1})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 1 and etag_of(response) == '"1"'
    assert response.json()["updated_at"] == task["updated_at"]
    assert len(alice.get(f"/{task['id']}").json()["history"]) == 1


def test_update_accepts_a_fetched_task_sent_back(alice):
    task = alice.create(title="Round trip")
    fetched = alice.get(f"/{task['id']}").json()
    fetched["title"] = "Round trip 2"
    response = alice.put(f"/{task['id']}", json=fetched)
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Round trip 2"
    assert response.json()["id"] == task["id"] and response.json()["created_by"] == alice.id


def test_update_null_clears_nullable_fields(alice):
    task = alice.create(category="c", assignee="x", due_date="2030-01-01", estimated_hours=2)
    response = alice.put(f"/{task['id']}", json={
        "category": None, "assignee": None, "due_date": None, "estimated_hours": None,
        "description": None,
    })
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["category"] is None and body["assignee"] is None
    assert body["due_date"] is None and body["estimated_hours"] is None
    assert body["description"] == ""


def test_update_to_completed_and_back(alice):
    task = alice.create()
    done = alice.put(f"/{task['id']}", json={"status": "completed"}).json()
    assert done["status"] == "completed" and done["completed_by"] == alice.id
    assert RFC3339_UTC.match(done["completed_at"]) and done["progress"] == 100
    reopened = alice.put(f"/{task['id']}", json={"status": "pending"}).json()
    assert reopened["status"] == "pending"
    assert reopened["completed_at"] is None and reopened["completed_by"] is None


def test_update_reports_every_bad_field(alice):
    task = alice.create()
    response = alice.put(f"/{task['id']}", json={
        "status": "done", "progress": 101, "actual_hours": "x", "priority": "p1", "title": None,
        "due_date": "31/12/2030",
    })
    error = assert_error(response, 400, "VALIDATION_ERROR", fields=[
        "status", "progress", "actual_hours", "priority", "title", "due_date",
    ])
    assert len(error["details"]) == 6
    assert alice.get(f"/{task['id']}").json()["version"] == 1


@pytest.mark.parametrize("progress", [-1, 101, 50.5, "50", None, True])
def test_update_rejects_bad_progress(alice, progress):
    task = alice.create()
    response = alice.put(f"/{task['id']}", json={"progress": progress})
    assert_error(response, 400, "VALIDATION_ERROR", fields=["progress"])


def test_update_unknown_task_is_404(alice):
    response = alice.put("/task_01J00000000000000000000000", json={"title": "x"})
    assert_error(response, 404, "NOT_FOUND")


# ---------------------------------------------------------------- optimistic concurrency


def test_stale_if_match_is_412_and_changes_nothing(alice):
    task = alice.create(title="Concurrent")
    first = alice.put(f"/{task['id']}", json={"title": "First"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200 and etag_of(first) == '"2"'
    stale = alice.put(f"/{task['id']}", json={"title": "Second"}, headers={"If-Match": '"1"'})
    error = assert_error(stale, 412, "PRECONDITION_FAILED")
    assert '"2"' in error["message"]
    current = alice.get(f"/{task['id']}")
    assert current.json()["title"] == "First" and etag_of(current) == '"2"'
    assert len(current.json()["history"]) == 2


@pytest.mark.parametrize("if_match", ['"1"', "*", 'W/"1"', '"7", "1"'])
def test_matching_if_match_proceeds(alice, if_match):
    task = alice.create()
    response = alice.put(f"/{task['id']}", json={"title": "ok"}, headers={"If-Match": if_match})
    assert response.status_code == 200, response.text


def test_stale_if_match_on_delete_and_complete(alice):
    task = alice.create()
    alice.put(f"/{task['id']}", json={"priority": "high"})
    stale = {"If-Match": '"1"'}
    assert_error(alice.delete(f"/{task['id']}", headers=stale), 412, "PRECONDITION_FAILED")
    assert_error(alice.post(f"/{task['id']}/complete", headers=stale), 412, "PRECONDITION_FAILED")
    current = alice.get(f"/{task['id']}").json()
    assert current["status"] == "pending" and current["version"] == 2
    assert alice.post(f"/{task['id']}/complete", headers={"If-Match": '"2"'}).status_code == 200
    assert alice.delete(f"/{task['id']}", headers={"If-Match": '"3"'}).status_code == 200


def test_concurrent_updates_with_one_etag_let_exactly_one_win(alice):
    task = alice.create(title="Race")
    barrier = threading.Barrier(8)

    def attempt(i):
        barrier.wait()
        return alice.put(f"/{task['id']}", json={"title": f"Racer {i}"},
                         headers={"If-Match": '"1"'})

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(attempt, range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * 7, [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    current = alice.get(f"/{task['id']}").json()
    assert current["title"] == winner["title"] and current["version"] == 2
    assert len(current["history"]) == 2


def test_concurrent_updates_without_if_match_all_apply(alice):
    task = alice.create(title="Counter")
    fields = ["title", "description", "category", "assignee", "priority", "progress"]
    values = {"title": "T2", "description": "D", "category": "C", "assignee": alice.id,
              "priority": "urgent", "progress": 42}

    def attempt(field):
        return alice.put(f"/{task['id']}", json={field: values[field]})

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(attempt, fields))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    current = alice.get(f"/{task['id']}").json()
    for field in fields:
        assert current[field] == values[field], field
    assert current["version"] == 1 + len(fields)
    assert len(current["history"]) == 1 + len(fields)


# ---------------------------------------------------------------- authorization


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer " + access_token("usr_x", lifetime=-60)},
        {"Authorization": "Bearer " + access_token("usr_x", token_type="refresh")},
        {"Authorization": "Bearer " + access_token("usr_x", key="another-secret-0123456789abcdefghij")},
    ],
)
def test_missing_or_bad_token_is_401(dep, headers):
    for method, path in [("GET", ""), ("POST", ""), ("GET", "/stats"),
                         ("GET", "/task_01J00000000000000000000000")]:
        response = requests.request(method, dep.api(path), headers=headers, json={"title": "t"},
                                    timeout=30)
        assert_error(response, 401, "UNAUTHORIZED")


def test_token_in_the_query_string_is_refused(dep, alice):
    response = requests.get(dep.api("") + "?access_token=" + alice.token, timeout=30)
    assert_error(response, 401, "UNAUTHORIZED")


def test_reading_needs_tasks_read(dep, alice):
    task = alice.create()
    outsider = dep.caller(roles=("user",), permissions=["ai:use"])
    for path in ["", f"/{task['id']}", "/stats"]:
        assert_error(outsider.get(path), 403, "FORBIDDEN")


def test_guest_reads_but_cannot_write(alice, guest):
    task = alice.create()
    assert guest.get(f"/{task['id']}").status_code == 200
    assert guest.get("").status_code == 200
    assert_error(guest.post(json={"title": "t"}), 403, "FORBIDDEN")
    assert_error(guest.put(f"/{task['id']}", json={"title": "t"}), 403, "FORBIDDEN")
    assert_error(guest.delete(f"/{task['id']}"), 403, "FORBIDDEN")
    assert_error(guest.post(f"/{task['id']}/complete"), 403, "FORBIDDEN")
    assert_error(guest.post(f"/{task['id']}/comments", json={"text": "hi"}), 403, "FORBIDDEN")


def test_only_creator_assignee_or_admin_may_change(dep, alice, bob, admin):
    task = alice.create(title="Alice's")
    path = f"/{task['id']}"
    assert_error(bob.put(path, json={"title": "Bob's"}), 403, "FORBIDDEN")
    assert_error(bob.post(path + "/complete"), 403, "FORBIDDEN")
    assert_error(bob.delete(path), 403, "FORBIDDEN")
    assert alice.get(path).json()["version"] == 1
    # Anyone who may write may comment.
    assert bob.post(path + "/comments", json={"text": "may I?"}).status_code == 201
    # Assigned to bob (by id): now bob may change it.
    assert alice.put(path, json={"assignee": bob.id}).status_code == 200
    assert bob.put(path, json={"title": "Bob's now"}).status_code == 200
    # Assigned by email works too.
    carol = dep.caller(roles=("user",))
    assert bob.put(path, json={"assignee": carol.email}).status_code == 200
    assert carol.put(path, json={"progress": 10}).status_code == 200
    assert_error(bob.put(path, json={"progress": 20}), 403, "FORBIDDEN")
    # Admins may do anything.
    assert admin.put(path, json={"priority": "urgent"}).status_code == 200
    assert admin.post(path + "/complete").status_code == 200
    assert admin.delete(path).status_code == 200


def test_old_tokens_without_permissions_get_those_of_their_roles(dep):
    legacy = dep.caller(roles=("user",), permissions=None)
    task = legacy.create()
    assert legacy.get(f"/{task['id']}").status_code == 200
    legacy_guest = dep.caller(roles=("guest",), permissions=None)
    assert legacy_guest.get(f"/{task['id']}").status_code == 200
    assert_error(legacy_guest.post(json={"title": "t"}), 403, "FORBIDDEN")


# ---------------------------------------------------------------- delete


def test_delete_removes_the_task(alice):
    task = alice.create()
    alice.post(f"/{task['id']}/comments", json={"text": "bye"})
    response = alice.delete(f"/{task['id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["id"] == task["id"]
    assert isinstance(body["message"], str) and body["message"]
    assert_error(alice.get(f"/{task['id']}"), 404, "NOT_FOUND")
    assert_error(alice.delete(f"/{task['id']}"), 404, "NOT_FOUND")
    assert_error(alice.put(f"/{task['id']}", json={"title": "x"}), 404, "NOT_FOUND")
    assert_error(alice.post(f"/{task['id']}/complete"), 404, "NOT_FOUND")
    assert_error(alice.post(f"/{task['id']}/comments", json={"text": "x"}), 404, "NOT_FOUND")


# ---------------------------------------------------------------- complete


def test_complete_returns_the_completion(alice):
    task = alice.create(estimated_hours=2)
    response = alice.post(f"/{task['id']}/complete", json={"actual_hours": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"id", "status", "completed_at", "completed_by", "actual_hours"}
    assert body["id"] == task["id"] and body["status"] == "completed"
    assert body["completed_by"] == alice.id and RFC3339_UTC.match(body["completed_at"])
    assert body["actual_hours"] == 3
    assert etag_of(response) == '"2"'
    full = alice.get(f"/{task['id']}").json()
    assert full["status"] == "completed" and full["progress"] == 100
    assert full["completed_at"] == body["completed_at"]
    status_entries = [e for e in full["history"] if e["action"] == "status_changed"]
    assert [(e["from"], e["to"]) for e in status_entries] == [("pending", "completed")]


def test_complete_without_body_keeps_actual_hours(alice):
    task = alice.create()
    alice.put(f"/{task['id']}", json={"actual_hours": 1.25})
    body = alice.post(f"/{task['id']}/complete").json()
    assert body["actual_hours"] == 1.25


def test_completing_twice_is_409(alice):
    task = alice.create()
    assert alice.post(f"/{task['id']}/complete").status_code == 200
    assert_error(alice.post(f"/{task['id']}/complete"), 409, "CONFLICT")


@pytest.mark.parametrize("body", [{"actual_hours": -1}, {"actual_hours": "3"}])
def test_complete_rejects_bad_actual_hours(alice, body):
    task = alice.create()
    assert_error(alice.post(f"/{task['id']}/complete", json=body), 400, "VALIDATION_ERROR",
                 fields=["actual_hours"])
    assert alice.get(f"/{task['id']}").json()["status"] == "pending"


# ---------------------------------------------------------------- comments


def test_comment_is_201_and_listed_with_the_task(alice, bob):
    task = alice.create()
    response = bob.post(f"/{task['id']}/comments", json={"text": "  Looks good  "})
    assert response.status_code == 201, response.text
    comment = response.json()
    assert set(comment) == {"id", "task_id", "user_id", "text", "created_at"}
    assert comment["id"].startswith("cmt_") and comment["task_id"] == task["id"]
    assert comment["user_id"] == bob.id and comment["text"] == "Looks good"
    assert RFC3339_UTC.match(comment["created_at"])
    second = alice.post(f"/{task['id']}/comments", json={"text": "thanks"}).json()
    fetched = alice.get(f"/{task['id']}")
    assert fetched.json()["comments"] == [comment, second]
    # Comments do not change the task's version.
    assert etag_of(fetched) == '"1"'


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "   "}, {"text": 5},
                                  {"text": "x" * 5001}])
def test_comment_validation(alice, body):
    task = alice.create()
    assert_error(alice.post(f"/{task['id']}/comments", json=body), 400, "VALIDATION_ERROR",
                 fields=["text"])


def test_comment_on_unknown_task_is_404(alice):
    response = alice.post("/task_01J00000000000000000000000/comments", json={"text": "x"})
    assert_error(response, 404, "NOT_FOUND")


def test_wrong_method_is_405(alice):
    task = alice.create()
    response = alice.request("PATCH", f"/{task['id']}", json={"title": "x"})
    assert response.status_code == 405
    assert "PUT" in response.headers.get("Allow", "")
