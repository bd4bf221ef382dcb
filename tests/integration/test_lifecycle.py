# Process lifecycle and the CLI: graceful drain on SIGTERM, config check, targets, user create.
import json
import os
import re
import select
import socket
import time

import pytest
import requests

from harness import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, register


def test_sigterm_lets_an_inflight_login_finish(factory):
    # Cost 12 makes the login slow enough to be in flight when the signal lands.
    dep = factory(env={"AETHER_SERVICES_SECURITY_BCRYPT_COST": "12",
                       "AETHER_SHUTDOWN_DRAIN_TIMEOUT": "20s"})
    # An idle keep-alive connection must not hold the drain up.
    idle = requests.Session()
    assert idle.get(dep.url("/health"), timeout=10).status_code == 200

    body = json.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).encode()
    sock = socket.create_connection(("127.0.0.1", dep.server.port), timeout=30)
    sock.sendall(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    time.sleep(0.1)
    readable, _, _ = select.select([sock], [], [], 0)
    assert not readable, "the login answered before SIGTERM; the drain was not exercised"
    dep.server.process.send_signal(15)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    sock.close()
    data = b"".join(chunks)
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    payload = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert payload["token_type"] == "Bearer" and payload["access_token"]
    assert dep.server.process.wait(timeout=30) == 0, dep.server.log()[-2000:]
    # Nothing listens any more.
    with pytest.raises(requests.ConnectionError):
        requests.get(dep.url("/health"), timeout=2)


def test_sigterm_idle_server_exits_zero(factory):
    dep = factory()
    assert requests.get(dep.url("/ready"), timeout=10).status_code == 200
    assert dep.server.terminate(timeout=30) == 0, dep.server.log()[-2000:]


def test_state_survives_a_restart(factory):
    dep = factory()
    user = register(dep)
    assert dep.server.terminate(timeout=30) == 0
    dep.server.start()
    response = requests.post(dep.api("/login"), json={"email": user.email, "password": PASSWORD}, timeout=30)
    assert response.status_code == 200, response.text


def process_cpu_seconds(pid):
    # utime and stime, fields 14 and 15 of /proc/PID/stat (after the command in parentheses).
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_busy_polling_serves_and_sleeps_once_idle(factory):
    dep = factory(env={"AETHER_HTTP_IO_THREADS": "1", "AETHER_HTTP_BUSY_POLL_US": "10000"})
    session = requests.Session()
    for _ in range(300):
        assert session.get(dep.url("/health"), timeout=10).status_code == 200
    metrics = session.get(dep.url("/metrics"), timeout=10).text
    spells = {name: float(value) for name, value in re.findall(
        r"^(http_io_idle_spells_(?:caught|waited)_total) (\S+)$", metrics, re.M)}
    assert set(spells) == {"http_io_idle_spells_caught_total", "http_io_idle_spells_waited_total"}
    # With gaps of a millisecond or so between requests, a 10 ms window catches most of them.
    assert spells["http_io_idle_spells_caught_total"] > spells["http_io_idle_spells_waited_total"]
    assert '"busy_poll_us":10000' in dep.server.log()
    time.sleep(0.5)
    before = process_cpu_seconds(dep.server.process.pid)
    time.sleep(2)
    # Polling without sleeping would take the 2 s whole.
    assert process_cpu_seconds(dep.server.process.pid) - before < 0.3
    assert dep.server.terminate(timeout=30) == 0, dep.server.log()[-2000:]


def test_busy_polling_with_several_io_threads_is_refused(factory):
    for threads in ("2", "0"):
        _, out = cli(factory, "config", "check", "--target=security",
                     env={"AETHER_HTTP_IO_THREADS": threads, "AETHER_HTTP_BUSY_POLL_US": "50"})
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert "http.busy_poll_us: busy polling needs http.io_threads=1" in out.stderr, out.stderr


# ---------------------------------------------------------------- CLI


def cli(factory, *args, env=None, input=None):
    dep = factory(start=False, create_admin=False)
    environment = dict(dep.env)
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return dep, dep.server.cli(*args, env=environment, input=input)


def test_version(factory):
    _, out = cli(factory, "version")
    assert out.returncode == 0 and out.stdout.startswith("aether ")


def test_version_names_the_allocator_that_serves_malloc(factory):
    # `make integration` says which allocator its build must have: mimalloc for release, the
    # C library's for the sanitizer build. Either way, one that is linked must also serve malloc.
    _, out = cli(factory, "version")
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines()[1:])
    allocator = lines["allocator"]
    assert allocator == "system" or re.fullmatch(r"mimalloc \d+\.\d+\.\d+", allocator), allocator
    expected = os.environ.get("AETHER_EXPECT_ALLOCATOR")
    if expected is not None:
        assert allocator.split(" ")[0] == expected, allocator


def test_list_targets(factory):
    _, out = cli(factory, "serve", "--list-targets")
    assert out.returncode == 0
    names = [line.split("\t")[0] for line in out.stdout.splitlines()]
    assert "security" in names and "all" in names and "tasks" in names


def test_config_check_ok(factory):
    dep, out = cli(factory, "config", "check", "--target=security")
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stdout


@pytest.mark.parametrize(
    "name,value",
    [
        ("AETHER_SERVICES_SECURITY_BCRYPT_COST", "abc"),
        ("AETHER_SERVICES_SECURITY_BCRYPT_COST", "99"),
        ("AETHER_HTTP_BODY_TIMEOUT", "soon"),
        ("AETHER_AUTH_JWT_ALGORITHM", "HS1"),
        ("AETHER_SERVICES_SECURITY_DATABASE", "mysql://nope"),
    ],
)
def test_config_check_bad_env_value_exits_2_and_explains(factory, name, value):
    _, out = cli(factory, "config", "check", "--target=security", env={name: value})
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert name in out.stderr, out.stderr
    assert value in out.stderr or "must" in out.stderr, out.stderr


def test_config_check_unknown_env_variable_is_named(factory):
    _, out = cli(factory, "config", "check", "--target=security",
                 env={"AETHER_SERVICES_SECURITY_BCRYPT_COSTS": "4"})
    assert out.returncode == 2
    assert "AETHER_SERVICES_SECURITY_BCRYPT_COSTS" in out.stderr, out.stderr


def test_config_check_unknown_key_in_yaml_is_named(factory):
    dep = factory(start=False, create_admin=False)
    (dep.root / "aether.yaml").write_text(
        "services:\n  security:\n    bcrypt_cost: 4\n    bcrypt_costt: 5\nhttp:\n  max_body_bytes: 2048\n"
    )
    out = dep.server.cli("config", "check", "--target=security")
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "services.security.bcrypt_costt" in out.stderr, out.stderr
    assert "aether.yaml:4" in out.stderr, out.stderr


def test_short_jwt_secret_is_refused(factory):
    _, out = cli(factory, "config", "check", "--target=security", env={"AETHER_AUTH_JWT_SECRET": "short"})
    assert out.returncode == 2
    assert "32" in out.stderr and "AETHER_AUTH_JWT_SECRET" in out.stderr


def test_cors_wildcard_with_credentials_is_refused(factory):
    _, out = cli(factory, "config", "check", "--target=security",
                 env={"AETHER_HTTP_CORS_ALLOWED_ORIGINS": "*", "AETHER_HTTP_CORS_ALLOW_CREDENTIALS": "true"})
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "http.cors.allow_credentials" in out.stderr, out.stderr


def test_missing_jwt_secret_is_refused_for_a_single_target(factory):
    dep, out = cli(factory, "serve", "--target=security", "--listen", "127.0.0.1:0",
                   "--data-dir", "unused", env={"AETHER_AUTH_JWT_SECRET": None})
    assert out.returncode != 0
    assert "AETHER_AUTH_JWT_SECRET" in out.stderr, out.stderr


def test_target_not_built_is_a_clear_error(factory):
    dep, out = cli(factory, "serve", "--target=analytics", "--listen", "127.0.0.1:0", "--data-dir", "d")
    assert out.returncode != 0
    assert "analytics" in out.stderr and "not include" in out.stderr, out.stderr
    _, out = cli(factory, "serve", "--target=nonsense", "--listen", "127.0.0.1:0", "--data-dir", "d")
    assert out.returncode != 0 and "nonsense" in out.stderr, out.stderr


def test_user_create_validates_and_refuses_duplicates(factory):
    dep = factory(start=False)  # creates the admin already
    data = str(dep.data_dir)
    out = dep.server.cli("user", "create", "--target=security", "--email", ADMIN_EMAIL, "--name", "Again",
                         "--role", "admin", "--data-dir", data, input=ADMIN_PASSWORD + "\n")
    assert out.returncode == 1 and "already exists" in out.stderr, out.stderr
    out = dep.server.cli("user", "create", "--target=security", "--email", "x@example.com", "--name", "X",
                         "--role", "emperor", "--data-dir", data, input=ADMIN_PASSWORD + "\n")
    assert out.returncode == 2 and "role" in out.stderr, out.stderr
    out = dep.server.cli("user", "create", "--target=security", "--email", "y@example.com", "--name", "Y",
                         "--data-dir", data, input="short\n")
    assert out.returncode == 2 and "password" in out.stderr, out.stderr
    # The admin created by the CLI logs in on the served instance.
    dep.start()
    response = requests.post(dep.api("/login"), json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                             timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["roles"] == ["admin"]


def test_migrate_is_idempotent(factory):
    dep = factory(start=False, create_admin=False)
    for _ in range(2):
        out = dep.server.cli("migrate", "--target=security", "--data-dir", str(dep.data_dir))
        assert out.returncode == 0, out.stderr
        assert "security migrated" in out.stdout

