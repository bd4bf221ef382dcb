# Starts the real `aether` binary against SQLite or a private PostgreSQL, and the HTTP helpers.
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import jwt
import requests

REPO = Path(__file__).resolve().parents[2]
PG_TEST_SERVER = REPO / "scripts" / "pg-test-server"
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))

# 40 bytes, known to the tests so that PyJWT can mint tokens the server must accept.
JWT_SECRET = "integration-test-secret-0123456789abcdef"
assert len(JWT_SECRET.encode()) == 40

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "Admin-passw0rd"
PASSWORD = "Sup3r-secret-pass"

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def aether_binary():
    path = Path(os.environ.get("AETHER_BIN", "build/release/aether"))
    if not path.is_absolute():
        path = REPO / path
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_environment(overrides=None):
    """The parent's environment without AETHER_* (unknown AETHER_ names are config errors)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    env.update(
        {
            "AETHER_AUTH_JWT_SECRET": JWT_SECRET,
            "AETHER_SERVICES_SECURITY_BCRYPT_COST": "4",
            # Every test client is 127.0.0.1: only the throttle tests want small limits/delays.
            "AETHER_SERVICES_SECURITY_LOGIN_ADDRESS_LIMIT": "100000",
            "AETHER_SERVICES_SECURITY_LOGIN_FREE_FAILURES": "1000",
            "AETHER_HTTP_IO_THREADS": "2",
            "AETHER_BLOCKING_THREADS": "2",
        }
    )
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def sql_literal(value):
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


class PostgresCluster:
    """The private cluster of scripts/pg-test-server, one per test session."""

    def __init__(self, directory):
        self.directory = Path(directory)
        out = subprocess.run(
            [str(PG_TEST_SERVER), "start", str(self.directory), "0"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"pg-test-server start failed ({out.returncode}): {out.stderr}")
        url = out.stdout.strip().splitlines()[-1]
        match = re.match(r"^postgresql://postgres@127\.0\.0\.1:(\d+)/(\w+)$", url)
        if not match:
            raise RuntimeError(f"pg-test-server printed an unexpected URL: {url!r}")
        self.port = int(match.group(1))

    def psql(self, database, sql):
        out = subprocess.run(
            [
                str(PG_BIN / "psql") if (PG_BIN / "psql").exists() else "psql",
                "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                "-c", sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr}")
        return out.stdout

    def create_database(self):
        name = "aether_it_" + uuid.uuid4().hex[:12]
        self.psql("postgres", f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self):
        subprocess.run([str(PG_TEST_SERVER), "stop", str(self.directory)], timeout=60)


class Database:
    """The security service's database, reached directly (for compatibility fixtures)."""

    def __init__(self, backend, data_dir, cluster=None):
        self.backend = backend
        self.cluster = cluster
        if backend == "postgres":
            self.url = cluster.create_database()
            self.pg_name = self.url.rsplit("/", 1)[1]
            self.sqlite_path = None
        else:
            self.url = None  # the default: sqlite:<data-dir>/security.db
            self.sqlite_path = Path(data_dir) / "security.db"

    def env(self):
        return {"AETHER_SERVICES_SECURITY_DATABASE": self.url} if self.url else {}

    def execute(self, sql):
        """Runs one statement whose values are already literals; returns the rows as strings."""
        if self.backend == "postgres":
            text = self.cluster.psql(self.pg_name, sql)
            return [line.split("|") for line in text.splitlines() if line]
        with sqlite3.connect(self.sqlite_path, timeout=10) as connection:
            rows = connection.execute(sql).fetchall()
            connection.commit()
        return [["" if v is None else str(v) for v in row] for row in rows]


# The security suite runs per target (the default) and all-in-one behind the gateway's edge
# (AETHER_TEST_TARGET=all): the same behaviour is expected from both.
DEFAULT_TARGET = os.environ.get("AETHER_TEST_TARGET", "security")


class Server:
    """One `aether serve` process (--target=security unless told otherwise)."""

    def __init__(self, workdir, data_dir, env, target=None, args=()):
        self.workdir = Path(workdir)
        self.data_dir = Path(data_dir)
        self.env = env
        self.target = target or DEFAULT_TARGET
        self.args = list(args)
        self.process = None
        self.port = None
        self.log_path = self.workdir / f"aether-{uuid.uuid4().hex[:8]}.log"

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path):
        return self.base + path

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cli(self, *args, input=None, env=None, timeout=60):
        return subprocess.run(
            [str(aether_binary()), *args],
            cwd=self.workdir,
            env=env or self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, timeout=30):
        binary = aether_binary()
        if not binary.exists():
            raise RuntimeError(f"aether binary not found at {binary} (set AETHER_BIN)")
        for _attempt in range(3):
            self.port = free_port()
            log = open(self.log_path, "ab")
            self.process = subprocess.Popen(
                [
                    str(binary), "serve", f"--target={self.target}",
                    "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir),
                    *self.args,
                ],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    if requests.get(self.url("/ready"), timeout=1).status_code == 200:
                        return self
                except requests.RequestException:
                    pass
                time.sleep(0.05)
            if self.process.poll() is None:
                self.kill()
                raise RuntimeError(f"aether did not become ready in {timeout}s:\n{self.log()[-3000:]}")
            if "cannot listen" not in self.log():
                break
        raise RuntimeError(
            f"aether exited with {self.process.returncode} before ready:\n{self.log()[-3000:]}"
        )

    def terminate(self, timeout=40):
        """SIGTERM and wait; returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class Deployment:
    """A data dir + fresh database + CLI-created admin + running server, for one backend."""

    def __init__(self, backend, tmp_dir, cluster=None, env=None, create_admin=True, args=()):
        self.backend = backend
        self.root = Path(tmp_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.db = Database(backend, self.data_dir, cluster)
        merged = dict(self.db.env())
        merged.update(env or {})
        self.env = clean_environment(merged)
        self.server = Server(self.root, self.data_dir, self.env, args=args)
        self.admin_id = None
        if create_admin:
            out = self.server.cli(
                "user", "create", "--target=security", "--email", ADMIN_EMAIL, "--name", "Admin",
                "--role", "admin", "--data-dir", str(self.data_dir),
                input=ADMIN_PASSWORD + "\n",
            )
            if out.returncode != 0:
                raise RuntimeError(f"aether user create failed ({out.returncode}): {out.stderr}")
            match = re.search(r"\((usr_[^)]+)\)", out.stdout)
            self.admin_id = match.group(1) if match else None

    def start(self):
        self.server.start()
        return self

    def url(self, path):
        return self.server.url(path)

    def api(self, path):
        return self.server.url("/api/v1/auth" + path)

    def stop(self):
        try:
            self.server.terminate()
        finally:
            self.server.kill()


def unique_email(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def assert_error(response, status, code=None, fields=None):
    """Checks the common error envelope and returns the inner error object."""
    assert response.status_code == status, f"{response.status_code} {response.text[:500]}"
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    for key in ("code", "message", "details", "request_id", "timestamp"):
        assert key in error, (key, error)
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    assert RFC3339_UTC.match(error["timestamp"]), error["timestamp"]
    assert error["request_id"] == response.headers.get("X-Request-ID"), (error, response.headers)
    if code is not None:
        assert error["code"] == code, error
    if fields is not None:
        present = {d["field"] for d in error["details"]}
        for field in fields:
            assert field in present, (field, error["details"])
        for detail in error["details"]:
            assert isinstance(detail.get("message"), str) and detail["message"], detail
    return error


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


class User:
    def __init__(self, deployment, email, password, user_id=None):
        self.deployment = deployment
        self.email = email
        self.password = password
        self.id = user_id
        self.tokens = None

    def login(self, expect=200):
        response = requests.post(
            self.deployment.api("/login"),
            json={"email": self.email, "password": self.password},
            timeout=30,
        )
        assert response.status_code == expect, response.text
        if expect == 200:
            self.tokens = response.json()
            self.id = self.tokens["user"]["id"]
        return response

    @property
    def access(self):
        return self.tokens["access_token"]

    @property
    def refresh(self):
        return self.tokens["refresh_token"]

    def headers(self):
        return bearer(self.access)


def register(deployment, email=None, password=PASSWORD, name="Test User"):
    email = email or unique_email()
    response = requests.post(
        deployment.api("/register"),
        json={"email": email, "password": password, "name": name},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return User(deployment, email, password, response.json()["user_id"])


def new_user(deployment, **kwargs):
    user = register(deployment, **kwargs)
    user.login()
    return user


def admin_of(deployment):
    user = User(deployment, ADMIN_EMAIL, ADMIN_PASSWORD)
    user.login()
    return user


def mint(claims, key=JWT_SECRET, algorithm="HS256", headers=None):
    """A token as the old Python service (PyJWT) would have made it."""
    token = jwt.encode(claims, key, algorithm=algorithm, headers=headers)
    return token if isinstance(token, str) else token.decode()


def old_claims(user_id, email, roles=("user",), token_type="access", lifetime=3600, **extra):
    now = int(time.time())
    claims = {
        "sub": user_id,
        "email": email,
        "roles": list(roles),
        "exp": now + lifetime,
        "iat": now,
        "type": token_type,
    }
    claims.update(extra)
    return claims
