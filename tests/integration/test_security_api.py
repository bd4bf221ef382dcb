# Every endpoint of the security service and its error paths, against one server per backend.
import pytest
import requests

from harness import (
    ADMIN_EMAIL,
    RFC3339_UTC,
    User,
    admin_of,
    assert_error,
    bearer,
    new_user,
    register,
    unique_email,
)


@pytest.fixture(scope="module")
def dep(module_factory):
    return module_factory()


@pytest.fixture(scope="module")
def admin(dep):
    return admin_of(dep)


def post(dep, path, **kwargs):
    kwargs.setdefault("timeout", 30)
    return requests.post(dep.api(path), **kwargs)


def get(dep, path, **kwargs):
    kwargs.setdefault("timeout", 30)
    return requests.get(dep.api(path), **kwargs)


# ---------------------------------------------------------------- register


def test_register_returns_201_with_fields(dep):
    email = unique_email()
    response = post(dep, "/register", json={"email": email, "password": "Passw0rd-ok", "name": "Ann"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= {"user_id", "email", "message"}
    assert body["email"] == email
    assert isinstance(body["user_id"], str) and body["user_id"]
    assert isinstance(body["message"], str) and body["message"]


def test_register_duplicate_email_is_409(dep):
    user = register(dep)
    response = post(dep, "/register", json={"email": user.email, "password": "Other-passw0rd", "name": "B"})
    assert_error(response, 409, "CONFLICT")


@pytest.mark.parametrize(
    "email",
    ["not-an-email", "", "a@", "@example.com", "two@@example.com", "spaces in@example.com"],
)
def test_register_bad_email_is_400_with_details(dep, email):
    response = post(dep, "/register", json={"email": email, "password": "Passw0rd-ok", "name": "N"})
    assert_error(response, 400, "VALIDATION_ERROR", fields=["email"])


@pytest.mark.parametrize("password", ["a1", "short1", "1234567", "abcdefghij", "0123456789"])
def test_register_short_or_weak_password_is_400(dep, password):
    response = post(dep, "/register", json={"email": unique_email(), "password": password, "name": "N"})
    error = assert_error(response, 400, "VALIDATION_ERROR", fields=["password"])
    assert all(d["field"] == "password" for d in error["details"]), error


def test_register_password_over_72_bytes_is_400_with_clear_message(dep):
    # 73 bytes of which only 37 characters: the limit is bcrypt's, in bytes.
    password = "é" * 36 + "1"
    assert len(password.encode()) == 73
    response = post(dep, "/register", json={"email": unique_email(), "password": password, "name": "N"})
    error = assert_error(response, 400, "VALIDATION_ERROR", fields=["password"])
    messages = " ".join(d["message"] for d in error["details"] if d["field"] == "password")
    assert "72" in messages and "bytes" in messages, messages


def test_register_72_byte_password_is_accepted(dep):
    password = "a1" * 36
    user = register(dep, password=password)
    user.login()


def test_register_missing_fields_are_400_each_named(dep):
    response = post(dep, "/register", json={})
    assert_error(response, 400, "VALIDATION_ERROR", fields=["email", "password", "name"])
    response = post(dep, "/register", json={"email": unique_email(), "password": "Passw0rd-ok"})
    assert_error(response, 400, "VALIDATION_ERROR", fields=["name"])


def test_register_wrong_types_are_400(dep):
    response = post(dep, "/register", json={"email": 5, "password": ["x"], "name": {"a": 1}})
    assert_error(response, 400, "VALIDATION_ERROR", fields=["email", "password", "name"])
    response = post(dep, "/register", json={"email": unique_email(), "password": None, "name": "N"})
    assert_error(response, 400, "VALIDATION_ERROR", fields=["password"])


@pytest.mark.parametrize(
    "body", ['{"email": "a@example.com",', "{'email': 1}", "nul", '{"a":1} trailing', "\xff\xfe"]
)
def test_register_malformed_json_is_400(dep, body):
    response = post(dep, "/register", data=body.encode("latin-1"),
                    headers={"Content-Type": "application/json"})
    assert_error(response, 400, "VALIDATION_ERROR", fields=["body"])


@pytest.mark.parametrize("body", ["[]", '"text"', "42", "null", "true", '[{"email":"a@b.c"}]'])
def test_register_non_object_json_is_400(dep, body):
    response = post(dep, "/register", data=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "VALIDATION_ERROR", fields=["body"])


def test_register_empty_body_is_400(dep):
    response = post(dep, "/register", data=b"", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "VALIDATION_ERROR")


# ---------------------------------------------------------------- login


def test_login_returns_tokens_and_user(dep):
    user = register(dep, name="Login Shape")
    response = user.login()
    body = response.json()
    assert set(body) >= {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"] != body["refresh_token"]
    u = body["user"]
    assert set(u) >= {"id", "email", "name", "roles", "created_at"}
    assert u["id"] == user.id
    assert u["email"] == user.email
    assert u["name"] == "Login Shape"
    assert u["roles"] == ["user"]
    assert RFC3339_UTC.match(u["created_at"]), u["created_at"]


def test_login_access_token_claims(dep):
    import jwt as pyjwt

    user = new_user(dep)
    claims = pyjwt.decode(user.access, options={"verify_signature": False})
    for key in ("sub", "email", "roles", "permissions", "type", "iat", "exp", "jti"):
        assert key in claims, (key, claims)
    assert claims["sub"] == user.id
    assert claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == 3600
    refresh = pyjwt.decode(user.refresh, options={"verify_signature": False})
    assert refresh["type"] == "refresh"
    assert refresh["sub"] == user.id
    assert refresh["exp"] - refresh["iat"] == 30 * 24 * 3600


def _without_volatile(error):
    return {k: v for k, v in error.items() if k not in ("request_id", "timestamp")}


def test_login_unknown_email_and_wrong_password_look_identical(dep):
    user = register(dep)
    wrong = post(dep, "/login", json={"email": user.email, "password": "Wrong-passw0rd"})
    unknown = post(dep, "/login", json={"email": unique_email("ghost"), "password": "Wrong-passw0rd"})
    e1 = assert_error(wrong, 401, "UNAUTHORIZED")
    e2 = assert_error(unknown, 401, "UNAUTHORIZED")
    assert e1["message"] == "Invalid credentials"
    assert _without_volatile(e1) == _without_volatile(e2)
    assert wrong.headers.get("Content-Type") == unknown.headers.get("Content-Type")


def test_login_validation_errors(dep):
    assert_error(post(dep, "/login", json={}), 400, "VALIDATION_ERROR", fields=["email", "password"])
    assert_error(post(dep, "/login", json={"email": 1, "password": 2}), 400, "VALIDATION_ERROR",
                 fields=["email", "password"])
    assert_error(post(dep, "/login", data="{", headers={"Content-Type": "application/json"}),
                 400, "VALIDATION_ERROR")
    assert_error(post(dep, "/login", data="[1]", headers={"Content-Type": "application/json"}),
                 400, "VALIDATION_ERROR")


def test_login_email_is_case_insensitive(dep):
    user = register(dep)
    response = post(dep, "/login", json={"email": user.email.upper(), "password": user.password})
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == user.id


# ---------------------------------------------------------------- refresh


def test_refresh_rotates_and_old_token_is_spent(dep):
    user = new_user(dep)
    first = user.refresh
    response = post(dep, "/refresh", json={"refresh_token": first})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"access_token", "expires_in", "refresh_token"}
    assert body["expires_in"] == 3600
    assert body["refresh_token"] != first
    # The new access token works.
    me = get(dep, "/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["user_id"] == user.id
    # The second refresh token works once too.
    again = post(dep, "/refresh", json={"refresh_token": body["refresh_token"]})
    assert again.status_code == 200, again.text


def test_refresh_reuse_revokes_the_whole_family(dep):
    user = new_user(dep)
    first = user.refresh
    rotated = post(dep, "/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    newest = rotated.json()["refresh_token"]
    reuse = post(dep, "/refresh", json={"refresh_token": first})
    assert_error(reuse, 401, "UNAUTHORIZED")
    after = post(dep, "/refresh", json={"refresh_token": newest})
    assert_error(after, 401, "UNAUTHORIZED")
    # Another login starts a new, healthy family.
    user.login()
    assert post(dep, "/refresh", json={"refresh_token": user.refresh}).status_code == 200


def test_refresh_token_in_query_string_is_400(dep):
    user = new_user(dep)
    response = requests.post(dep.api("/refresh"), params={"refresh_token": user.refresh}, timeout=30)
    assert_error(response, 400, "VALIDATION_ERROR", fields=["refresh_token"])
    # Also with a body: the URL copy is refused, the token must not be spent by it.
    response = requests.post(dep.api("/refresh"), params={"refresh_token": user.refresh},
                             json={"refresh_token": user.refresh}, timeout=30)
    assert_error(response, 400, "VALIDATION_ERROR")
    assert post(dep, "/refresh", json={"refresh_token": user.refresh}).status_code == 200


def test_refresh_errors(dep):
    user = new_user(dep)
    assert_error(post(dep, "/refresh", json={}), 400, "VALIDATION_ERROR", fields=["refresh_token"])
    assert_error(post(dep, "/refresh", json={"refresh_token": 12}), 400, "VALIDATION_ERROR",
                 fields=["refresh_token"])
    assert_error(post(dep, "/refresh", json={"refresh_token": "garbage"}), 401, "UNAUTHORIZED")
    # An access token is not a refresh token.
    assert_error(post(dep, "/refresh", json={"refresh_token": user.access}), 401, "UNAUTHORIZED")


# ---------------------------------------------------------------- validate


def test_validate_access_token(dep):
    user = new_user(dep)
    response = post(dep, "/validate", json={"token": user.access})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is True
    assert body["user_id"] == user.id
    assert body["roles"] == ["user"]
    assert "tasks:read" in body["permissions"] and "users:admin" not in body["permissions"]
    assert RFC3339_UTC.match(body["expires_at"]), body


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "x" * 9000])
def test_validate_garbage_is_valid_false(dep, token):
    response = post(dep, "/validate", json={"token": token})
    assert response.status_code == 200, response.text
    assert response.json() == {"valid": False}


def test_validate_refresh_token_is_valid_false(dep):
    user = new_user(dep)
    response = post(dep, "/validate", json={"token": user.refresh})
    assert response.status_code == 200, response.text
    assert response.json() == {"valid": False}


def test_validate_missing_token_field_is_400(dep):
    assert_error(post(dep, "/validate", json={}), 400, "VALIDATION_ERROR", fields=["token"])


# ---------------------------------------------------------------- me


def test_me_with_access_token(dep):
    user = new_user(dep)
    response = get(dep, "/me", headers=user.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == user.id
    assert body["email"] == user.email
    assert body["roles"] == ["user"]
    assert isinstance(body["permissions"], list) and "tasks:read" in body["permissions"]


def test_me_without_token_is_401(dep):
    assert_error(get(dep, "/me"), 401, "UNAUTHORIZED")
    assert_error(get(dep, "/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401, "UNAUTHORIZED")
    assert_error(get(dep, "/me", headers={"Authorization": "Bearer "}), 401, "UNAUTHORIZED")


def test_me_with_refresh_token_is_401(dep):
    user = new_user(dep)
    assert_error(get(dep, "/me", headers=bearer(user.refresh)), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("name", ["access_token", "token"])
def test_me_with_token_in_query_string_is_401(dep, name):
    user = new_user(dep)
    response = get(dep, "/me", params={name: user.access})
    assert_error(response, 401, "UNAUTHORIZED")
    # Even alongside a valid header, the URL credential is refused.
    response = get(dep, "/me", params={name: user.access}, headers=user.headers())
    assert_error(response, 401, "UNAUTHORIZED")


# ---------------------------------------------------------------- logout


def test_logout_revokes_the_family(dep):
    user = new_user(dep)
    rotated = post(dep, "/refresh", json={"refresh_token": user.refresh})
    assert rotated.status_code == 200
    newest = rotated.json()["refresh_token"]
    response = post(dep, "/logout", json={"refresh_token": newest})
    assert response.status_code == 200, response.text
    assert_error(post(dep, "/refresh", json={"refresh_token": newest}), 401, "UNAUTHORIZED")
    # Other sessions of the same user are untouched.
    other = User(dep, user.email, user.password)
    other.login()
    assert post(dep, "/refresh", json={"refresh_token": other.refresh}).status_code == 200


def test_logout_errors(dep):
    user = new_user(dep)
    assert_error(post(dep, "/logout", json={}), 400, "VALIDATION_ERROR", fields=["refresh_token"])
    assert_error(post(dep, "/logout", json={"refresh_token": "garbage"}), 401, "UNAUTHORIZED")
    assert_error(post(dep, "/logout", json={"refresh_token": user.access}), 401, "UNAUTHORIZED")


# ---------------------------------------------------------------- api keys


def create_key(dep, user, **body):
    body.setdefault("name", "ci")
    return post(dep, "/api-keys", json=body, headers=user.headers())


def test_api_key_lifecycle(dep):
    user = new_user(dep)
    response = create_key(dep, user, name="deploy", scopes=["tasks:read"])
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) >= {"id", "name", "key", "scopes", "created_at"}
    secret = created["key"]
    assert created["name"] == "deploy" and created["scopes"] == ["tasks:read"]
    assert isinstance(secret, str) and len(secret) >= 32

    listed = get(dep, "/api-keys", headers=user.headers())
    assert listed.status_code == 200, listed.text
    keys = listed.json()["api_keys"]
    assert [k["id"] for k in keys] == [created["id"]]
    assert "key" not in keys[0] and secret not in listed.text
    assert not any("hash" in field for field in keys[0])

    # Used as a Bearer token and as X-API-Key.
    via_bearer = get(dep, "/me", headers=bearer(secret))
    assert via_bearer.status_code == 200, via_bearer.text
    assert via_bearer.json()["user_id"] == user.id
    assert via_bearer.json()["permissions"] == ["tasks:read"]
    via_header = get(dep, "/me", headers={"X-API-Key": secret})
    assert via_header.status_code == 200, via_header.text
    assert via_header.json()["user_id"] == user.id

    revoked = requests.delete(dep.api(f"/api-keys/{created['id']}"), headers=user.headers(), timeout=30)
    assert revoked.status_code == 200, revoked.text
    assert_error(get(dep, "/me", headers=bearer(secret)), 401, "UNAUTHORIZED")
    assert_error(get(dep, "/me", headers={"X-API-Key": secret}), 401, "UNAUTHORIZED")
    # Revoking twice: there is no active key with this id any more.
    again = requests.delete(dep.api(f"/api-keys/{created['id']}"), headers=user.headers(), timeout=30)
    assert_error(again, 404, "NOT_FOUND")


def test_api_key_without_scopes_gets_the_users_permissions(dep):
    user = new_user(dep)
    response = create_key(dep, user)
    assert response.status_code == 201, response.text
    me = get(dep, "/me", headers=bearer(user.access)).json()
    assert sorted(response.json()["scopes"]) == sorted(me["permissions"])


def test_api_key_scope_not_held_is_400(dep):
    user = new_user(dep)
    response = create_key(dep, user, scopes=["tasks:read", "users:admin"])
    assert_error(response, 400, "VALIDATION_ERROR", fields=["scopes[1]"])
    response = create_key(dep, user, scopes=[])
    assert_error(response, 400, "VALIDATION_ERROR", fields=["scopes"])


def test_api_key_validation_and_auth(dep):
    user = new_user(dep)
    assert_error(create_key(dep, user, name=""), 400, "VALIDATION_ERROR", fields=["name"])
    assert_error(post(dep, "/api-keys", json={}, headers=user.headers()), 400, "VALIDATION_ERROR",
                 fields=["name"])
    assert_error(create_key(dep, user, scopes="tasks:read"), 400, "VALIDATION_ERROR")
    assert_error(post(dep, "/api-keys", json={"name": "x"}), 401, "UNAUTHORIZED")
    assert_error(get(dep, "/api-keys"), 401, "UNAUTHORIZED")
    assert_error(requests.delete(dep.api("/api-keys/ak_nothing"), timeout=30), 401, "UNAUTHORIZED")


def test_api_key_of_another_user_is_404(dep):
    owner = new_user(dep)
    other = new_user(dep)
    created = create_key(dep, owner, scopes=["tasks:read"]).json()
    response = requests.delete(dep.api(f"/api-keys/{created['id']}"), headers=other.headers(), timeout=30)
    assert_error(response, 404, "NOT_FOUND")
    assert get(dep, "/me", headers=bearer(created["key"])).status_code == 200
    # And it is not in the other user's list.
    assert get(dep, "/api-keys", headers=other.headers()).json()["api_keys"] == []


def test_unknown_api_key_is_401(dep):
    assert_error(get(dep, "/me", headers={"X-API-Key": "ak_doesnotexist_0123456789"}), 401, "UNAUTHORIZED")
    assert_error(get(dep, "/me", headers=bearer("ak_doesnotexist_0123456789")), 401, "UNAUTHORIZED")


def test_validate_accepts_api_key(dep):
    user = new_user(dep)
    created = create_key(dep, user, scopes=["tasks:read"]).json()
    body = post(dep, "/validate", json={"token": created["key"]}).json()
    assert body["valid"] is True and body["user_id"] == user.id
    assert body["permissions"] == ["tasks:read"]


# ---------------------------------------------------------------- admin: users


def test_list_users_requires_admin(dep):
    user = new_user(dep)
    assert_error(get(dep, "/users"), 401, "UNAUTHORIZED")
    assert_error(get(dep, "/users", headers=user.headers()), 403, "FORBIDDEN")


def test_list_users_pagination(dep, admin):
    for _ in range(3):
        register(dep)
    response = get(dep, "/users", params={"page": 1, "limit": 2}, headers=admin.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["users"]) == 2
    p = body["pagination"]
    assert set(p) == {"total", "page", "limit", "total_pages", "has_next", "has_prev"}
    assert p["page"] == 1 and p["limit"] == 2 and p["total"] >= 4
    assert p["total_pages"] == (p["total"] + 1) // 2
    assert p["has_next"] is True and p["has_prev"] is False
    for u in body["users"]:
        assert set(u) >= {"id", "email", "name", "roles", "created_at"}
        assert "password_hash" not in u and "password" not in u
    last = get(dep, "/users", params={"page": p["total_pages"], "limit": 2}, headers=admin.headers()).json()
    assert last["pagination"]["has_next"] is False and last["pagination"]["has_prev"] is True
    # All pages together hold every user once.
    seen = []
    for page in range(1, p["total_pages"] + 1):
        seen += [u["id"] for u in get(dep, "/users", params={"page": page, "limit": 2},
                                      headers=admin.headers()).json()["users"]]
    assert len(seen) == len(set(seen)) == p["total"]
    default = get(dep, "/users", headers=admin.headers()).json()["pagination"]
    assert default["page"] == 1 and default["limit"] == 20
    assert any(u["email"] == ADMIN_EMAIL for u in get(dep, "/users", params={"limit": 100},
                                                      headers=admin.headers()).json()["users"])


@pytest.mark.parametrize(
    "params,field",
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"page": "1.5"}, "page"),
    ],
)
def test_list_users_bad_pagination_is_400(dep, admin, params, field):
    response = get(dep, "/users", params=params, headers=admin.headers())
    assert_error(response, 400, "VALIDATION_ERROR", fields=[field])


def test_list_users_limit_100_is_accepted(dep, admin):
    response = get(dep, "/users", params={"limit": 100}, headers=admin.headers())
    assert response.status_code == 200, response.text


# ---------------------------------------------------------------- admin: roles


def put_roles(dep, who, user_id, roles):
    return requests.put(dep.api(f"/users/{user_id}/roles"), json={"roles": roles},
                        headers=who.headers(), timeout=30)


def test_set_roles_forbidden_for_non_admin(dep):
    user = new_user(dep)
    victim = register(dep)
    assert_error(put_roles(dep, user, victim.id, ["admin"]), 403, "FORBIDDEN")
    assert_error(put_roles(dep, user, user.id, ["admin"]), 403, "FORBIDDEN")
    response = requests.put(dep.api(f"/users/{victim.id}/roles"), json={"roles": ["user"]}, timeout=30)
    assert_error(response, 401, "UNAUTHORIZED")


def test_set_roles_unknown_role_is_400_with_index(dep, admin):
    user = register(dep)
    response = put_roles(dep, admin, user.id, ["user", "superuser"])
    assert_error(response, 400, "VALIDATION_ERROR", fields=["roles[1]"])
    assert_error(put_roles(dep, admin, user.id, []), 400, "VALIDATION_ERROR", fields=["roles"])
    assert_error(put_roles(dep, admin, user.id, "admin"), 400, "VALIDATION_ERROR", fields=["roles"])


def test_set_roles_unknown_user_is_404(dep, admin):
    assert_error(put_roles(dep, admin, "usr_doesnotexist", ["user"]), 404, "NOT_FOUND")


def test_set_roles_removing_last_admin_is_409(dep, admin):
    response = put_roles(dep, admin, admin.id, ["user"])
    assert_error(response, 409, "CONFLICT")
    # Still an admin.
    assert get(dep, "/users", headers=admin.headers()).status_code == 200


def test_set_roles_shows_in_next_login_token(dep, admin):
    user = new_user(dep)
    response = put_roles(dep, admin, user.id, ["developer"])
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["developer"]
    user.login()
    me = get(dep, "/me", headers=user.headers()).json()
    assert me["roles"] == ["developer"]
    assert "code:run" in me["permissions"]
    body = post(dep, "/validate", json={"token": user.access}).json()
    assert body["roles"] == ["developer"] and "code:run" in body["permissions"]


def test_second_admin_can_demote_first_then_last_admin_is_protected(dep, admin):
    other = new_user(dep)
    assert put_roles(dep, admin, other.id, ["admin"]).status_code == 200
    other.login()
    # With two admins, one may be demoted...
    assert put_roles(dep, other, other.id, ["user"]).status_code == 200
    # ...and then the remaining one may not.
    assert_error(put_roles(dep, admin, admin.id, ["guest"]), 409, "CONFLICT")


# ---------------------------------------------------------------- audit


def test_audit_requires_admin(dep):
    user = new_user(dep)
    assert_error(get(dep, "/audit"), 401, "UNAUTHORIZED")
    assert_error(get(dep, "/audit", headers=user.headers()), 403, "FORBIDDEN")


def test_audit_records_logins_reuse_and_role_changes(dep, admin):
    user = new_user(dep)
    assert post(dep, "/login", json={"email": user.email, "password": "Wrong-passw0rd"}).status_code == 401
    first = user.refresh
    assert post(dep, "/refresh", json={"refresh_token": first}).status_code == 200
    assert post(dep, "/refresh", json={"refresh_token": first}).status_code == 401
    assert put_roles(dep, admin, user.id, ["guest"]).status_code == 200

    response = get(dep, "/audit", params={"user_id": user.id, "limit": 100}, headers=admin.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert "pagination" in body
    entries = body["entries"]
    events = [e["event"] for e in entries]
    for expected in ("auth.login.succeeded", "auth.login.failed", "auth.token.reuse", "role.changed"):
        assert expected in events, (expected, events)
    for entry in entries:
        assert entry["user_id"] == user.id
        assert RFC3339_UTC.match(entry["timestamp"]), entry
    change = next(e for e in entries if e["event"] == "role.changed")
    assert change["details"]["to"] == ["guest"] and change["details"]["from"] == ["user"]
    assert change["details"]["by"] == admin.id
    failed = next(e for e in entries if e["event"] == "auth.login.failed")
    assert failed["ip"] == "127.0.0.1"
    # Filtering by event.
    only = get(dep, "/audit", params={"event": "role.changed", "limit": 100},
               headers=admin.headers()).json()["entries"]
    assert only and all(e["event"] == "role.changed" for e in only)
    assert any(e["user_id"] == user.id for e in only)


def test_audit_never_contains_secrets(dep, admin):
    user = new_user(dep)
    key = create_key(dep, user, scopes=["tasks:read"]).json()["key"]
    text = get(dep, "/audit", params={"user_id": user.id, "limit": 100}, headers=admin.headers()).text
    assert user.password not in text
    assert key not in text
    assert user.refresh not in text and user.access not in text


def test_audit_bad_pagination_is_400(dep, admin):
    assert_error(get(dep, "/audit", params={"limit": 1000}, headers=admin.headers()), 400,
                 "VALIDATION_ERROR", fields=["limit"])


# ---------------------------------------------------------------- jwks


def test_jwks_is_empty_for_hs256(dep):
    response = get(dep, "/.well-known/jwks.json")
    assert response.status_code == 200, response.text
    assert response.json() == {"keys": []}
