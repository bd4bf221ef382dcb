# Tokens minted by the old Python service (PyJWT) and bcrypt hashes it stored keep working.
import bcrypt
import pytest
import requests

from harness import (
    JWT_SECRET,
    assert_error,
    bearer,
    mint,
    new_user,
    old_claims,
    register,
    sql_literal,
    unique_email,
)


@pytest.fixture(scope="module")
def dep(module_factory):
    return module_factory()


def test_pyjwt_access_token_is_accepted_by_me_and_validate(dep):
    user = register(dep)
    token = mint(old_claims(user.id, user.email, roles=["user"]), key=JWT_SECRET)
    me = requests.get(dep.api("/me"), headers=bearer(token), timeout=30)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user_id"] == user.id and body["email"] == user.email
    assert body["roles"] == ["user"]
    # No permissions claim in old tokens: they follow from the roles.
    assert "tasks:read" in body["permissions"]
    valid = requests.post(dep.api("/validate"), json={"token": token}, timeout=30).json()
    assert valid["valid"] is True and valid["user_id"] == user.id
    assert valid["roles"] == ["user"] and "tasks:read" in valid["permissions"]


def test_pyjwt_token_with_other_secret_is_rejected(dep):
    user = register(dep)
    token = mint(old_claims(user.id, user.email), key="another-secret-of-forty-bytes-0123456789")
    assert_error(requests.get(dep.api("/me"), headers=bearer(token), timeout=30), 401, "UNAUTHORIZED")
    assert requests.post(dep.api("/validate"), json={"token": token}, timeout=30).json() == {"valid": False}


def test_old_refresh_token_without_jti_works_once(dep):
    user = register(dep)
    token = mint(old_claims(user.id, user.email, token_type="refresh", lifetime=7 * 24 * 3600))
    first = requests.post(dep.api("/refresh"), json={"refresh_token": token}, timeout=30)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["expires_in"] == 3600 and body["refresh_token"] != token
    me = requests.get(dep.api("/me"), headers=bearer(body["access_token"]), timeout=30)
    assert me.status_code == 200 and me.json()["user_id"] == user.id
    second = requests.post(dep.api("/refresh"), json={"refresh_token": token}, timeout=30)
    assert_error(second, 401, "UNAUTHORIZED")


def test_old_refresh_token_for_unknown_user_is_401(dep):
    token = mint(old_claims("usr_doesnotexist", "ghost@example.com", token_type="refresh"))
    response = requests.post(dep.api("/refresh"), json={"refresh_token": token}, timeout=30)
    assert_error(response, 401, "UNAUTHORIZED")


def _python_hash(password, prefix):
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4, prefix=b"2b")).decode()
    assert hashed.startswith("$2b$")
    # $2a$ and $2y$ hashes of the old service are the same algorithm under another name.
    return prefix + hashed[len("$2b$"):]


@pytest.mark.parametrize("prefix", ["$2b$", "$2a$", "$2y$"])
def test_python_bcrypt_hashes_verify(dep, prefix):
    user = register(dep)
    password = "Legacy-passw0rd-" + prefix.strip("$")
    stored = _python_hash(password, prefix)
    dep.db.execute(
        f"UPDATE users SET password_hash = {sql_literal(stored)} WHERE id = {sql_literal(user.id)}"
    )
    assert dep.db.execute(f"SELECT password_hash FROM users WHERE id = {sql_literal(user.id)}") == [[stored]]
    ok = requests.post(dep.api("/login"), json={"email": user.email, "password": password}, timeout=30)
    assert ok.status_code == 200, ok.text
    assert ok.json()["user"]["id"] == user.id
    wrong = requests.post(dep.api("/login"), json={"email": user.email, "password": user.password},
                          timeout=30)
    assert_error(wrong, 401, "UNAUTHORIZED")
    # Logging in again still works whatever the service did to the stored hash (e.g. rehash).
    again = requests.post(dep.api("/login"), json={"email": user.email, "password": password}, timeout=30)
    assert again.status_code == 200, again.text


def test_hash_written_by_service_is_standard_bcrypt(dep):
    user = new_user(dep)
    [[stored]] = dep.db.execute(f"SELECT password_hash FROM users WHERE id = {sql_literal(user.id)}")
    assert stored.startswith(("$2b$", "$2a$", "$2y$")), stored
    assert bcrypt.checkpw(user.password.encode(), stored.encode())


def test_user_inserted_like_the_old_service_can_log_in(dep):
    # A row as a migration of the old database would write it, with a python3-bcrypt hash.
    email = unique_email("legacy")
    password = "Old-system-passw0rd"
    stored = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    dep.db.execute(
        "INSERT INTO users (id, email, name, password_hash, roles, created_at, updated_at) VALUES ("
        + ", ".join(sql_literal(v) for v in ["usr_legacy" + email[7:17], email, "Legacy", stored, "user",
                                             "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z"])
        + ")"
    )
    response = requests.post(dep.api("/login"), json={"email": email, "password": password}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["email"] == email
