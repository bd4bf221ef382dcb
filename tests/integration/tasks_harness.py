# The tasks service under test: `aether serve --target=tasks` on SQLite or a private PostgreSQL,
# access tokens minted with the shared secret (the contract's claims), and a look into its outbox.
import json
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
import requests

from harness import JWT_SECRET, Server, bearer, clean_environment, mint

BASE = "/api/v1/tasks"
SECURITY_KEYS = (
    "AETHER_SERVICES_SECURITY_BCRYPT_COST",
    "AETHER_SERVICES_SECURITY_LOGIN_ADDRESS_LIMIT",
    "AETHER_SERVICES_SECURITY_LOGIN_FREE_FAILURES",
)
READ_WRITE = ["tasks:read", "tasks:write"]


def access_token(user_id, email=None, roles=("user",), permissions=READ_WRITE, lifetime=3600,
                 token_type="access", key=JWT_SECRET, **extra):
    now = int(time.time())
    claims = {
        "sub": user_id,
        "email": email or f"{user_id}@example.com",
        "roles": list(roles),
        "type": token_type,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    if permissions is not None:
        claims["permissions"] = list(permissions)
    claims.update(extra)
    return mint(claims, key=key)


class Caller:
    """One user of the tasks API, with their bearer token."""

    def __init__(self, deployment, user_id, roles=("user",), permissions=READ_WRITE, email=None):
        self.deployment = deployment
        self.id = user_id
        self.email = email or f"{user_id}@example.com"
        self.token = access_token(user_id, self.email, roles, permissions)

    def headers(self, extra=None):
        headers = bearer(self.token)
        headers.update(extra or {})
        return headers

    def request(self, method, path="", headers=None, **kwargs):
        kwargs.setdefault("timeout", 30)
        return requests.request(
            method, self.deployment.api(path), headers=self.headers(headers), **kwargs
        )

    def get(self, path="", **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path="", **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path="", **kwargs):
        return self.request("PUT", path, **kwargs)

    def delete(self, path="", **kwargs):
        return self.request("DELETE", path, **kwargs)

    def create(self, **fields):
        fields.setdefault("title", "Task " + uuid.uuid4().hex[:8])
        response = self.post(json=fields)
        assert response.status_code == 201, response.text
        return response.json()


class TasksDeployment:
    """A data dir + fresh database + a running tasks process, for one backend."""

    def __init__(self, backend, root, cluster=None, env=None):
        self.backend = backend
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cluster = cluster
        overrides = {key: None for key in SECURITY_KEYS}
        if backend == "postgres":
            self.database_url = cluster.create_database()
            self.pg_name = self.database_url.rsplit("/", 1)[1]
            overrides["AETHER_SERVICES_TASKS_DATABASE"] = self.database_url
        else:
            self.sqlite_path = self.data_dir / "tasks.db"
        overrides.update(env or {})
        self.env = clean_environment(overrides)
        self.server = Server(self.root, self.data_dir, self.env, target="tasks")

    def start(self):
        self.server.start()
        return self

    def stop(self):
        try:
            self.server.terminate()
        finally:
            self.server.kill()

    def url(self, path):
        return self.server.url(path)

    def api(self, path=""):
        return self.server.url(BASE + path)

    def caller(self, user_id=None, **kwargs):
        return Caller(self, user_id or "usr_" + uuid.uuid4().hex[:12], **kwargs)

    def execute(self, sql):
        """Runs one statement with literal values on the tasks database; rows as strings."""
        if self.backend == "postgres":
            text = self.cluster.psql(self.pg_name, sql)
            return [line.split("|") for line in text.splitlines() if line]
        with sqlite3.connect(self.sqlite_path, timeout=10) as connection:
            rows = connection.execute(sql).fetchall()
            connection.commit()
        return [["" if v is None else str(v) for v in row] for row in rows]

    def events(self, task_id=None, event_type=None):
        """The CloudEvents envelopes in the outbox, oldest first, optionally for one task/type."""
        rows = self.execute("SELECT payload FROM outbox ORDER BY seq")
        if self.backend == "postgres":
            # psql -A prints one row per line; payloads are single-line JSON.
            payloads = ["|".join(row) for row in rows]
        else:
            payloads = [row[0] for row in rows]
        events = [json.loads(payload) for payload in payloads]
        if task_id is not None:
            events = [e for e in events if e["data"].get("task_id") == task_id]
        if event_type is not None:
            events = [e for e in events if e["type"] == event_type]
        return events


@pytest.fixture(scope="module")
def tasks_dep(backend, cluster, tmp_path_factory):
    deployment = TasksDeployment(backend, tmp_path_factory.mktemp(f"tasks-{backend}"), cluster)
    deployment.start()
    yield deployment
    deployment.stop()
