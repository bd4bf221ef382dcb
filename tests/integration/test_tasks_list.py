# GET /api/v1/tasks: every filter, sort field, order and pagination, over a known data set.
import pytest

from harness import assert_error
from tasks_harness import tasks_dep  # noqa: F401 (fixture)

# title, status, priority, category, assignee, tags, due_date (created in this order)
ROWS = [
    ("apple", "pending", "low", "home", None, ["x"], "2030-01-05"),
    ("banana", "in_progress", "medium", "work", "usr_b", ["x", "y"], "2030-01-01"),
    ("cherry", "completed", "high", "work", "usr_b", ["y"], None),
    ("date", "blocked", "urgent", "home", "usr_c", [], "2029-12-01"),
    ("elder", "pending", "high", "work", None, ["x", "y", "z"], "2030-02-01"),
    ("fig", "pending", "urgent", "garden", "usr_b", ["z"], None),
    ("grape", "in_progress", "low", "work", "usr_c", ["x"], "2029-06-30"),
    ("honeydew", "completed", "medium", "home", None, [], "2030-03-01"),
    ("kiwi", "pending", "medium", "work", "usr_b", ["y", "z"], "2030-01-10"),
    ("lemon", "blocked", "low", "garden", None, ["x", "z"], None),
    ("mango", "pending", "urgent", "work", "usr_c", ["y"], "2030-01-03"),
    ("nectar", "in_progress", "high", "home", "usr_b", ["x"], "2030-05-05"),
]
RANK = {"low": 1, "medium": 2, "high": 3, "urgent": 4}


@pytest.fixture(scope="module")
def data(tasks_dep):
    """(caller, tasks by title as finally stored), created through the API."""
    alice = tasks_dep.caller()
    for title, status, priority, category, assignee, tags, due in ROWS:
        fields = {"title": title, "priority": priority, "category": category, "tags": tags}
        if assignee:
            fields["assignee"] = assignee
        if due:
            fields["due_date"] = due
        task = alice.create(**fields)
        if status == "completed":
            assert alice.post(f"/{task['id']}/complete").status_code == 200
        elif status != "pending":
            assert alice.put(f"/{task['id']}", json={"status": status}).status_code == 200
    listed = alice.get("", params={"limit": 100}).json()["tasks"]
    assert len(listed) == len(ROWS)
    return alice, {task["title"]: task for task in listed}


def titles(response):
    assert response.status_code == 200, response.text
    return [task["title"] for task in response.json()["tasks"]]


def newest_first(predicate):
    return [row[0] for row in reversed(ROWS) if predicate(row)]


def test_default_is_newest_first_with_pagination(data):
    alice, _ = data
    response = alice.get()
    assert titles(response) == newest_first(lambda row: True)
    assert response.json()["pagination"] == {
        "total": 12, "page": 1, "limit": 20, "total_pages": 1, "has_next": False,
        "has_prev": False,
    }


def test_list_items_are_full_tasks(data):
    alice, by_title = data
    task = by_title["banana"]
    assert task["status"] == "in_progress" and task["tags"] == ["x", "y"]
    assert task["assignee"] == "usr_b" and task["due_date"] == "2030-01-01T00:00:00.000Z"
    assert {"actual_hours", "progress", "version", "created_by"} <= set(task)


@pytest.mark.parametrize(
    "params, predicate",
    [
        ({"status": "pending"}, lambda r: r[1] == "pending"),
        ({"status": "completed"}, lambda r: r[1] == "completed"),
        ({"status": "in_progress"}, lambda r: r[1] == "in_progress"),
        ({"status": "blocked"}, lambda r: r[1] == "blocked"),
        ({"priority": "urgent"}, lambda r: r[2] == "urgent"),
        ({"priority": "low"}, lambda r: r[2] == "low"),
        ({"category": "work"}, lambda r: r[3] == "work"),
        ({"category": "nowhere"}, lambda r: False),
        ({"assignee": "usr_b"}, lambda r: r[4] == "usr_b"),
        ({"tags": "x"}, lambda r: "x" in r[5]),
        ({"tags": "x,y"}, lambda r: {"x", "y"} <= set(r[5])),
        ({"tags": " y , z ,"}, lambda r: {"y", "z"} <= set(r[5])),
        ({"tags": "nothing"}, lambda r: False),
        ({"due_before": "2030-01-05"}, lambda r: r[6] is not None and r[6] < "2030-01-05"),
        ({"due_before": "2030-01-05T00:00:00.001Z"},
         lambda r: r[6] is not None and r[6] <= "2030-01-05"),
        ({"status": "pending", "category": "work", "tags": "y"},
         lambda r: r[1] == "pending" and r[3] == "work" and "y" in r[5]),
        ({"priority": "high", "assignee": "usr_b", "due_before": "2031-01-01"},
         lambda r: r[2] == "high" and r[4] == "usr_b" and r[6] is not None),
        ({"status": "", "category": ""}, lambda r: True),
    ],
)
def test_filters(data, params, predicate):
    alice, _ = data
    response = alice.get(params=params)
    expected = newest_first(predicate)
    assert titles(response) == expected
    assert response.json()["pagination"]["total"] == len(expected)


def test_pages(data):
    alice, _ = data
    everything = newest_first(lambda row: True)
    seen = []
    for page in (1, 2, 3):
        response = alice.get(params={"limit": 5, "page": page})
        seen += titles(response)
        pagination = response.json()["pagination"]
        assert pagination == {
            "total": 12, "page": page, "limit": 5, "total_pages": 3, "has_next": page < 3,
            "has_prev": page > 1,
        }
    assert seen == everything
    beyond = alice.get(params={"limit": 5, "page": 4})
    assert titles(beyond) == []
    assert beyond.json()["pagination"]["total"] == 12
    assert beyond.json()["pagination"]["has_next"] is False
    filtered = alice.get(params={"status": "pending", "limit": 2, "page": 2})
    assert titles(filtered) == newest_first(lambda r: r[1] == "pending")[2:4]
    assert filtered.json()["pagination"]["total_pages"] == 3


def test_sort_by_created_at_ascending(data):
    alice, _ = data
    assert titles(alice.get(params={"order": "asc"})) == [row[0] for row in ROWS]
    assert titles(alice.get(params={"sort": "created_at", "order": "desc"})) == newest_first(
        lambda row: True)


def test_sort_by_title(data):
    alice, _ = data
    names = sorted(row[0] for row in ROWS)
    assert titles(alice.get(params={"sort": "title"})) == names
    assert titles(alice.get(params={"sort": "title", "order": "desc"})) == names[::-1]


def test_sort_by_priority_uses_urgency_not_the_name(data):
    alice, _ = data
    indexed = list(enumerate(ROWS))
    ascending = [row[0] for _, row in sorted(indexed, key=lambda p: (RANK[p[1][2]], p[0]))]
    assert titles(alice.get(params={"sort": "priority"})) == ascending
    descending = [row[0] for _, row in sorted(indexed, key=lambda p: (-RANK[p[1][2]], -p[0]))]
    assert titles(alice.get(params={"sort": "priority", "order": "desc"})) == descending


def test_sort_by_status(data):
    alice, _ = data
    indexed = list(enumerate(ROWS))
    ascending = [row[0] for _, row in sorted(indexed, key=lambda p: (p[1][1], p[0]))]
    assert titles(alice.get(params={"sort": "status", "order": "asc"})) == ascending


def test_sort_by_due_date_puts_tasks_without_one_last(data):
    alice, _ = data
    indexed = list(enumerate(ROWS))
    dated = [p for p in indexed if p[1][6]]
    undated = [p for p in indexed if not p[1][6]]
    ascending = [r[0] for _, r in sorted(dated, key=lambda p: p[1][6])] + [
        r[0] for _, r in undated]
    assert titles(alice.get(params={"sort": "due_date"})) == ascending
    descending = [r[0] for _, r in sorted(dated, key=lambda p: p[1][6], reverse=True)] + [
        r[0] for _, r in reversed(undated)]
    assert titles(alice.get(params={"sort": "due_date", "order": "desc"})) == descending


def test_sort_by_updated_at(data):
    alice, _ = data
    tasks = alice.get(params={"sort": "updated_at"}).json()["tasks"]
    assert len(tasks) == 12
    keys = [(t["updated_at"], t["created_at"], t["id"]) for t in tasks]
    assert keys == sorted(keys, reverse=True)
    # The tasks whose status was changed last come first.
    assert tasks[0]["title"] == "nectar"


@pytest.mark.parametrize(
    "params, fields",
    [
        ({"limit": 101}, ["limit"]),
        ({"limit": 0}, ["limit"]),
        ({"limit": "ten"}, ["limit"]),
        ({"page": 0}, ["page"]),
        ({"page": "-1"}, ["page"]),
        ({"sort": "owner"}, ["sort"]),
        ({"sort": "created_at;DROP TABLE tasks"}, ["sort"]),
        ({"order": "sideways"}, ["order"]),
        ({"status": "done"}, ["status"]),
        ({"priority": "p0"}, ["priority"]),
        ({"due_before": "soon"}, ["due_before"]),
        ({"due_before": "2030-02-30"}, ["due_before"]),
        ({"category": "c" * 101}, ["category"]),
        ({"tags": ",".join(f"t{i}" for i in range(21))}, ["tags"]),
        ({"limit": 500, "page": "x", "sort": "nope", "order": "up", "status": "s",
          "priority": "p", "due_before": "d"},
         ["limit", "page", "sort", "order", "status", "priority", "due_before"]),
    ],
)
def test_bad_parameters_are_400_with_every_field(data, params, fields):
    alice, _ = data
    error = assert_error(alice.get(params=params), 400, "VALIDATION_ERROR", fields=fields)
    assert sorted(d["field"] for d in error["details"]) == sorted(fields)
