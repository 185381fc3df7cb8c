"""The service's pure parts: API keys, signed tokens, the batch queue, the metrics text. Fast, no models."""

from __future__ import annotations

import json
import stat
import threading
import time

import numpy as np
import pytest

from facenet_keras.service.auth import KeyStore, TokenError, allows, load_secret, read_token, sign_token
from facenet_keras.service.batching import BatchQueue
from facenet_keras.service.metrics import Metrics


def test_keys_are_stored_hashed_private_and_checked(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    key = store.create("write", "door")
    text = (tmp_path / "keys.json").read_text()
    assert key not in text and key.split(".")[1] not in text  # only the hash is kept
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    found = store.check(key)
    assert found is not None and found.scope == "write" and found.label == "door"
    assert store.check(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.check("fk_" + found.id + ".") is None and store.check(None) is None
    other = KeyStore(tmp_path / "keys.json")  # a second process's view, re-read when the file changes
    other.revoke(found.id)
    assert store.check(key) is None
    with pytest.raises(ValueError, match="scope"):
        store.create("root")


def test_scopes_are_ordered():
    assert allows("admin", "write") and allows("write", "read") and allows("read", "read")
    assert not allows("read", "write") and not allows("write", "admin")


def test_tokens_are_signed_and_expire(tmp_path):
    secret = load_secret(tmp_path / "secret.key")
    assert load_secret(tmp_path / "secret.key") == secret and len(secret) == 32
    token = sign_token({"challenge": [1, 2], "kid": "ab"}, secret, ttl_s=60, now=1000.0)
    assert read_token(token, secret, now=1059.0)["challenge"] == [1, 2]
    with pytest.raises(TokenError, match="expired"):
        read_token(token, secret, now=1061.0)
    with pytest.raises(TokenError, match="signature"):
        read_token(token, b"x" * 32, now=1000.0)
    body, sig = token.split(".")
    import base64

    raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw["exp"] = 10**10  # a forged expiry
    forged = base64.urlsafe_b64encode(json.dumps(raw).encode()).rstrip(b"=").decode() + "." + sig
    with pytest.raises(TokenError):
        read_token(forged, secret, now=1000.0)
    with pytest.raises(TokenError, match="malformed"):
        read_token("nonsense", secret)


def test_batch_queue_shares_batches_and_returns_each_its_rows():
    sizes = []

    def square(x: np.ndarray) -> np.ndarray:
        time.sleep(0.02)  # a batch costs time, as the encoder does
        return x * x

    q = BatchQueue(square, max_batch=64, max_wait_s=0.05, on_batch=sizes.append)
    results, barrier = {}, threading.Barrier(16)

    def client(i: int) -> None:
        with q.expect() as submit:
            barrier.wait()
            results[i] = submit(np.full((2, 3), float(i)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q.close()
    for i in range(16):
        np.testing.assert_array_equal(results[i], np.full((2, 3), float(i * i)))
    assert sum(sizes) == 32 and max(sizes) > 2  # shared: fewer batches than requests


def test_a_lone_request_does_not_wait():
    # a wait of 60 s if the queue waited, so a busy machine cannot blur "waited" and "did not"
    q = BatchQueue(lambda x: x + 1, max_batch=32, max_wait_s=60.0)
    t0 = time.perf_counter()
    with q.expect() as submit:
        out = submit(np.zeros((1, 2)))
    q.close()
    assert (out == 1).all() and time.perf_counter() - t0 < 30  # nobody else announced: no 60 s wait


def test_a_failing_batch_fails_its_requests_only():
    def fn(x):
        if (x < 0).any():
            raise ValueError("negative")
        return x

    q = BatchQueue(fn, max_batch=4, max_wait_s=0.0)
    with pytest.raises(ValueError, match="negative"):
        q(np.array([[-1.0]]))
    assert q(np.array([[2.0]]))[0, 0] == 2.0
    q.close()


def test_metrics_text_format():
    m = Metrics()
    m.observe_request("POST", "/v1/recognize", 200, 0.03)
    m.observe_request("POST", "/v1/recognize", 422, 7.0)
    m.observe_batch(4)
    m.observe_batch(8)
    text = m.render()
    assert 'facenet_requests_total{method="POST",route="/v1/recognize",status="200"} 1' in text
    assert 'facenet_request_seconds_bucket{le="0.05",route="/v1/recognize"} 1' in text
    assert 'facenet_request_seconds_bucket{le="+Inf",route="/v1/recognize"} 2' in text
    assert "facenet_encoder_batch_size_sum 12.0" in text and "facenet_encoder_batch_size_count 2.0" in text
