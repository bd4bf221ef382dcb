# RS256 signing: the JWKS publishes the key, and PyJWT verifies the service's tokens with it.
import base64
import hashlib
import hmac
import json
import subprocess

import jwt as pyjwt
import pytest
import requests
from jwt.algorithms import RSAAlgorithm

from harness import assert_error, bearer, new_user, old_claims


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    private = directory / "private.pem"
    public = directory / "public.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(private)], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)],
                   check=True, capture_output=True)
    return private, public


@pytest.fixture(scope="module")
def dep(module_factory, keys):
    private, public = keys
    return module_factory(
        env={
            "AETHER_AUTH_JWT_ALGORITHM": "RS256",
            "AETHER_AUTH_JWT_PRIVATE_KEY_FILE": str(private),
            "AETHER_AUTH_JWT_PUBLIC_KEY_FILE": str(public),
            "AETHER_AUTH_JWT_KEY_ID": "itest-key-1",
        }
    )


def jwks(dep):
    response = requests.get(dep.api("/.well-known/jwks.json"), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_jwks_publishes_the_rsa_key(dep, keys):
    document = jwks(dep)
    assert len(document["keys"]) == 1
    key = document["keys"][0]
    assert key["kty"] == "RSA"
    assert key["kid"] == "itest-key-1"
    assert key.get("alg", "RS256") == "RS256"
    assert key.get("use", "sig") == "sig"
    assert key["n"] and key["e"] == "AQAB"
    assert "d" not in key and "p" not in key, "private parts must never be published"
    # n is the modulus of our key.
    public = pyjwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(key))
    with open(keys[1], "rb") as f:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        expected = load_pem_public_key(f.read())
    assert public.public_numbers() == expected.public_numbers()


def test_tokens_verify_with_pyjwt(dep, keys):
    user = new_user(dep)
    header = pyjwt.get_unverified_header(user.access)
    assert header["alg"] == "RS256" and header["kid"] == "itest-key-1"
    with open(keys[1], "rb") as f:
        pem = f.read()
    claims = pyjwt.decode(user.access, pem, algorithms=["RS256"])
    assert claims["sub"] == user.id and claims["type"] == "access"
    # Through the JWKS, as a gateway or another service would.
    key = RSAAlgorithm.from_jwk(json.dumps(jwks(dep)["keys"][0]))
    assert pyjwt.decode(user.access, key, algorithms=["RS256"])["sub"] == user.id
    assert pyjwt.decode(user.refresh, key, algorithms=["RS256"])["type"] == "refresh"
    assert requests.get(dep.api("/me"), headers=user.headers(), timeout=10).status_code == 200
    refreshed = requests.post(dep.api("/refresh"), json={"refresh_token": user.refresh}, timeout=10)
    assert refreshed.status_code == 200
    pyjwt.decode(refreshed.json()["access_token"], key, algorithms=["RS256"])


def _b64(data):
    if isinstance(data, dict):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_hs256_signed_with_the_public_key_is_refused(dep, keys):
    user = new_user(dep)
    with open(keys[1], "rb") as f:
        pem = f.read()
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(old_claims(user.id, user.email, roles=['admin']))}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(signature)}"
    assert_error(requests.get(dep.api("/me"), headers=bearer(token), timeout=10), 401, "UNAUTHORIZED")
    assert requests.post(dep.api("/validate"), json={"token": token}, timeout=10).json() == {"valid": False}


def test_token_signed_by_another_rsa_key_is_refused(dep, tmp_path):
    user = new_user(dep)
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(other)], check=True, capture_output=True)
    token = pyjwt.encode(old_claims(user.id, user.email), other.read_bytes(), algorithm="RS256",
                         headers={"kid": "itest-key-1"})
    assert_error(requests.get(dep.api("/me"), headers=bearer(token), timeout=10), 401, "UNAUTHORIZED")
