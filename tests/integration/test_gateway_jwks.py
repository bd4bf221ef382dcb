# The jwt plugin with `jwks_url`: the gateway verifies RS256 tokens of the security service with
# the keys it publishes, fetched and cached, without a call per request.
import subprocess
import time

import jwt as pyjwt
import pytest
import requests

from gateway_harness import Gateway
from gateway_harness import module_processes  # noqa: F401 (fixtures)
from harness import PASSWORD, Server, assert_error, clean_environment, unique_email

KID = "gateway-jwks-key"


def rsa_pair(directory, name):
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(private)], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)],
                   check=True, capture_output=True)
    return private, public


class Stopping:
    """Gives a harness.Server the stop() the process registry calls on teardown."""

    def __init__(self, server):
        self.server = server

    def stop(self):
        try:
            self.server.terminate()
        finally:
            self.server.kill()


@pytest.fixture(scope="module")
def setup(module_processes, tmp_path_factory):
    root = tmp_path_factory.mktemp("jwks")
    private, public = rsa_pair(root, "service")
    other_private, _ = rsa_pair(root, "other")
    env = clean_environment({
        "AETHER_AUTH_JWT_ALGORITHM": "RS256",
        "AETHER_AUTH_JWT_PRIVATE_KEY_FILE": str(private),
        "AETHER_AUTH_JWT_PUBLIC_KEY_FILE": str(public),
        "AETHER_AUTH_JWT_KEY_ID": KID,
    })
    (root / "security-data").mkdir()
    (root / "security").mkdir()
    security = Server(root / "security", root / "security-data", env, target="security")
    module_processes.add(Stopping(security))
    security.start()
    base = security.base
    config = f"""
_format_version: "3.0"
services:
  - name: security
    url: {base}
    routes:
      - name: public
        paths: [/api/v1/auth/login, /api/v1/auth/register]
        strip_path: false
      - name: protected
        paths: [/api/v1/auth]
        strip_path: false
        plugins:
          - name: jwt
            config:
              jwks_url: {base}/api/v1/auth/.well-known/jwks.json
"""
    gateway = module_processes.add(Gateway(root / "gateway", config)).start()
    return {"security": security, "gateway": gateway, "other_private": other_private}


def login(gw):
    email = unique_email("jwks")
    response = requests.post(gw.url("/api/v1/auth/register"),
                             json={"email": email, "password": PASSWORD, "name": "Jwks User"},
                             timeout=30)
    assert response.status_code == 201, response.text
    response = requests.post(gw.url("/api/v1/auth/login"),
                             json={"email": email, "password": PASSWORD}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_service_token_is_verified_with_the_published_key(setup):
    gw = setup["gateway"]
    token = login(gw)
    assert pyjwt.get_unverified_header(token)["kid"] == KID
    response = requests.get(gw.url("/api/v1/auth/me"), headers={"Authorization": f"Bearer {token}"},
                            timeout=10)
    assert response.status_code == 200, response.text
    # The gateway forwarded the identity it verified.
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert response.json()["user_id"] == claims["sub"]


def test_token_signed_by_another_key_with_the_same_kid_is_refused(setup):
    gw = setup["gateway"]
    token = login(gw)
    claims = pyjwt.decode(token, options={"verify_signature": False})
    forged = pyjwt.encode(claims, setup["other_private"].read_bytes(), algorithm="RS256",
                          headers={"kid": KID})
    response = requests.get(gw.url("/api/v1/auth/me"), headers={"Authorization": f"Bearer {forged}"},
                            timeout=10)
    assert_error(response, 401, "UNAUTHORIZED")


def test_unknown_kid_and_hs256_are_refused(setup):
    gw = setup["gateway"]
    token = login(gw)
    claims = pyjwt.decode(token, options={"verify_signature": False})
    unknown = pyjwt.encode(claims, setup["other_private"].read_bytes(), algorithm="RS256",
                           headers={"kid": "rotated-away"})
    response = requests.get(gw.url("/api/v1/auth/me"),
                            headers={"Authorization": f"Bearer {unknown}"}, timeout=10)
    error = assert_error(response, 401, "UNAUTHORIZED")
    assert "JWKS" in error["message"]
    # HS256 with any secret: the key from the JWKS is RS256, the algorithm is never the token's.
    hs = pyjwt.encode(claims, "x" * 40, algorithm="HS256", headers={"kid": KID})
    response = requests.get(gw.url("/api/v1/auth/me"), headers={"Authorization": f"Bearer {hs}"},
                            timeout=10)
    assert_error(response, 401, "UNAUTHORIZED")


def test_keys_are_cached_not_fetched_per_request(setup):
    gw = setup["gateway"]
    security = setup["security"]
    token = login(gw)
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(gw.url("/api/v1/auth/me"), headers=headers, timeout=10).status_code == 200

    def jwks_fetches():
        text = requests.get(security.url("/metrics"), timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("http_requests_total{") and "jwks.json" in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    before = jwks_fetches()
    for _ in range(50):
        assert requests.get(gw.url("/api/v1/auth/me"), headers=headers, timeout=10).status_code == 200
    time.sleep(0.2)
    assert jwks_fetches() == before
