# Brute-force protection of /login: per-account and per-address limits answer 429 + Retry-After.
import requests

from harness import assert_error, register, unique_email

LIMITS = {
    "AETHER_SERVICES_SECURITY_LOGIN_ACCOUNT_LIMIT": "3",
    "AETHER_SERVICES_SECURITY_LOGIN_ADDRESS_LIMIT": "5",
    "AETHER_SERVICES_SECURITY_LOGIN_WINDOW": "10m",
    "AETHER_SERVICES_SECURITY_LOGIN_FREE_FAILURES": "1000",
}


def login(dep, email, password):
    return requests.post(dep.api("/login"), json={"email": email, "password": password}, timeout=30)


def assert_429(response):
    error = assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
    assert "Retry-After" in response.headers, response.headers
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= 600
    assert error["retry_after"] == retry
    return retry


def test_account_limit(factory):
    dep = factory(env=LIMITS)
    user = register(dep)
    for _ in range(3):
        assert_error(login(dep, user.email, "Wrong-passw0rd"), 401, "UNAUTHORIZED")
    assert_429(login(dep, user.email, "Wrong-passw0rd"))
    # Even the right password waits: the check comes before the password is looked at.
    assert_429(login(dep, user.email, user.password))
    assert_429(login(dep, user.email.upper(), user.password))
    # Other accounts are not locked by this one.
    other = register(dep)
    assert login(dep, other.email, other.password).status_code == 200


def test_success_resets_the_account_count(factory):
    dep = factory(env=LIMITS)
    user = register(dep)
    for _ in range(2):
        assert login(dep, user.email, "Wrong-passw0rd").status_code == 401
    assert login(dep, user.email, user.password).status_code == 200
    for _ in range(2):
        assert login(dep, user.email, "Wrong-passw0rd").status_code == 401
    assert login(dep, user.email, user.password).status_code == 200


def test_address_limit(factory):
    dep = factory(env=LIMITS)
    # Spread over many accounts (one failure each), so only the address limit can trip.
    for _ in range(5):
        assert_error(login(dep, unique_email("spray"), "Wrong-passw0rd"), 401, "UNAUTHORIZED")
    assert_429(login(dep, unique_email("spray"), "Wrong-passw0rd"))
    # Unknown accounts from this address are blocked too; the body is the same shape.
    user = register(dep)
    assert_429(login(dep, user.email, user.password))
