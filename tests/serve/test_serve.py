"""attend serve over real HTTP on loopback: every endpoint and error code, answers equal to
attend translate under concurrency, batching, reload under load, SIGTERM drain, and hostile
clients (truncated bodies, huge headers, slow senders, invalid UTF-8, deep JSON, 10 MB bodies).

Two small models are trained here (seconds each). Each test starts its own server on a free port.
"""

import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pyhelpers"))
from small_models import CLI, ENV, attend, train_small_models  # noqa: E402

INPUTS = ["the 3rd of march, 1999", "Wednesday, November 25, 2026", "11/25/26", "1 jan 2000", "july 4, 1976"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return train_small_models(tmp_path_factory.mktemp("models"))


class Server:
    """attend serve on a free port; its stderr is collected line by line."""

    def __init__(self, models, *args, specs=None):
        specs = specs or [f"dates={models / 'rnn'}", f"tf={models / 'transformer'}"]
        cmd = [CLI, "serve", "--port", "0"] + [a for s in specs for a in ("--model", s)] + list(map(str, args))
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=ENV)
        self.lines = []
        first = self.proc.stderr.readline()
        self.lines.append(first)
        m = re.search(r"listening on http://[\d.]+:(\d+)", first)
        assert m, f"no listening line: {first!r} {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        self.port = int(m.group(1))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body if body is None or isinstance(body, (bytes, str)) else json.dumps(body)
            c.request(method, path, body=data, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def post(self, path, body, **kw):
        status, headers, data = self.request("POST", path, body, **kw)
        return status, json.loads(data)

    def metrics(self):
        status, _, data = self.request("GET", "/metrics")
        assert status == 200
        out = {}
        for line in data.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def raw(self, data, timeout=10):
        """Sends bytes on a fresh connection; returns what comes back before the server closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            return recv_all(s)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return code

    def log(self):
        return "".join(self.lines)

    def wait_log(self, *texts, timeout=10):
        """The log once it holds every one of texts (a request's line is written after its response,
        and read from the server's stderr by another thread), or as it is at the timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline and not all(t in self.log() for t in texts):
            time.sleep(0.02)
        return self.log()

    def wait_in_flight(self, n, timeout=30):
        """Until the server has read n requests it has not answered (or the timeout)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.metrics()["attend_requests_in_flight"] >= n + 1:  # + this /metrics request
                return
            time.sleep(0.02)
        raise AssertionError(f"the server did not read {n} requests within {timeout} s")


def recv_all(s):
    chunks = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except (ConnectionResetError, socket.timeout):
        pass
    return b"".join(chunks)


@pytest.fixture
def server(models):
    s = Server(models, "--threads", "2")
    yield s
    assert s.stop() == 0, s.log()


def translate_cli(model_dir, texts, beam):
    out = attend("translate", "--model", model_dir, "--beam", beam, *texts).stdout
    return out.splitlines()


def test_every_endpoint(server):
    status, _, body = server.request("GET", "/health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, body = server.request("GET", "/v1/models")
    listed = {m["name"]: m for m in json.loads(body)["models"]}
    assert status == 200 and set(listed) == {"dates", "tf"}
    assert listed["dates"]["architecture"] == "rnn" and listed["tf"]["architecture"] == "transformer"
    assert listed["dates"]["parameters"] > 1000 and listed["tf"]["source_vocab"] > 10
    status, r = server.post("/v1/translate", {"model": "dates", "text": INPUTS[:2], "beam": 3, "n_best": 2})
    assert status == 200 and r["model"] == "dates" and len(r["translations"]) == 2
    t = r["translations"][0]
    assert set(t) == {"text", "score", "log_prob", "n_best"} and len(t["n_best"]) == 2
    assert t["n_best"][0]["text"] == t["text"]
    status, r = server.post("/v1/align", {"model": "tf", "text": "11/25/26"})
    t = r["translations"][0]
    assert status == 200 and {"alignment", "weights", "source_tokens", "target_tokens"} <= set(t)
    assert len(t["weights"]) in (len(t["target_tokens"]), len(t["target_tokens"]) + 1)
    assert all(len(row) == len(t["source_tokens"]) and abs(sum(row) - 1) < 1e-3 for row in t["weights"])
    assert [j for _, j in t["alignment"]] == list(range(len(t["target_tokens"])))
    status, r = server.post("/v1/translate", {"model": "dates", "text": "11/25/26", "alignment": True})
    assert status == 200 and "weights" in r["translations"][0]
    m = server.metrics()
    assert m['attend_http_requests_total{route="/v1/translate",code="200"}'] == 2
    assert m["attend_sentences_total"] == 4 and m["attend_output_tokens_total"] > 0
    log = server.wait_log("POST /v1/align 200", "model=tf inputs=1")
    assert "POST /v1/align 200" in log and "model=tf inputs=1" in log


def test_error_codes_name_what_is_wrong(server):
    cases = [
        ("POST", "/v1/translate", "{not json", 400, "malformed JSON"),
        ("POST", "/v1/translate", {"model": "dates", "text": [1]}, 400, "'text'[0] must be a string"),
        ("POST", "/v1/translate", {"model": "dates", "text": ["a"], "beam": 99}, 400, "'beam' must be 1..16"),
        ("POST", "/v1/translate", {"model": "dates", "text": ["a"], "precision": "int8"}, 400, "fp32"),
        ("POST", "/v1/translate", {"model": "nope", "text": ["a"]}, 404, "no model named 'nope' (models: dates, tf)"),
        ("POST", "/v1/models/reload", {"model": "nope"}, 404, "no model named 'nope'"),
        ("GET", "/v2/whatever", None, 404, "no such endpoint"),
        ("GET", "/v1/translate", None, 405, "use POST"),
        ("POST", "/health", "{}", 405, "use GET"),
    ]
    for method, path, body, code, needle in cases:
        status, headers, data = server.request(method, path, body)
        assert status == code, (path, body, data)
        assert needle in json.loads(data)["error"], (path, body, data)
        assert headers["Content-Type"] == "application/json"
    status, headers, _ = server.request("GET", "/v1/translate")
    assert headers.get("Allow") == "POST"
    # The server is still well.
    assert server.post("/v1/translate", {"model": "dates", "text": "11/25/26"})[0] == 200


def test_an_input_the_model_cannot_take_is_named_and_the_others_translated(server):
    status, r = server.post("/v1/translate", {"model": "dates", "text": ["11/25/26", "\u00e9\u00e9"]})
    assert status == 200 and r["translations"][0]["text"]
    # Unknown characters map to <unk>: translated, not refused.
    assert "error" not in r["translations"][1]


def test_concurrent_clients_get_what_attend_translate_gives(models, server):
    for name, d in (("dates", "rnn"), ("tf", "transformer")):
        for beam in (1, 4):
            want = translate_cli(models / d, INPUTS, beam)

            def one(i):
                status, r = server.post("/v1/translate", {"model": name, "text": INPUTS[i % 5], "beam": beam})
                assert status == 200
                return i, r["translations"][0]["text"]

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                got = list(pool.map(one, range(80)))
            for i, text in got:
                assert text == want[i % 5], (name, beam, INPUTS[i % 5])


def test_requests_arriving_together_are_batched(models):
    s = Server(models, "--threads", "1", "--max-wait-ms", "100")
    try:
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            codes = list(pool.map(lambda i: s.post("/v1/translate", {"model": "dates", "text": INPUTS[i % 5]})[0],
                                  range(64)))
        assert codes == [200] * 64
        m = s.metrics()
        assert m["attend_batch_requests_count"] < 64, "64 concurrent requests should share batches"
        assert m['attend_batch_requests_bucket{le="1"}'] < m["attend_batch_requests_count"]
        assert re.search(r"batch=([2-9]|\d\d)", s.log())
    finally:
        assert s.stop() == 0


def test_a_full_queue_answers_503_with_retry_after(models):
    # The first request waits 4 s for company and fills the one-place queue.
    s = Server(models, "--max-queue", "1", "--max-wait-ms", "4000")
    try:
        first = concurrent.futures.ThreadPoolExecutor(1).submit(
            s.post, "/v1/translate", {"model": "dates", "text": "11/25/26"})
        s.wait_in_flight(1)
        status, headers, data = s.request("POST", "/v1/translate", json.dumps({"model": "dates", "text": "x"}))
        assert status == 503 and headers["Retry-After"] == "1" and b"queue is full" in data
        assert first.result(timeout=30)[0] == 200
    finally:
        assert s.stop() == 0


def test_hostile_requests_do_not_hurt_the_server(models):
    s = Server(models, "--read-timeout-ms", "1500", "--max-body-bytes", "1048576")
    try:
        # 10 MB body: refused from its Content-Length, before it is read.
        big = b"x" * (10 << 20)
        reply = s.raw(b"POST /v1/translate HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(big))
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        # Huge header.
        reply = s.raw(b"GET /health HTTP/1.1\r\nHost: a\r\nX-Big: " + b"y" * 20000 + b"\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
        # Not HTTP at all.
        assert s.raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
        # Invalid UTF-8 and deep nesting inside JSON.
        st, r = s.post("/v1/translate", b'{"model": "dates", "text": ["\xff\xfe"]}')
        assert st == 400 and "malformed JSON" in r["error"]
        st, r = s.post("/v1/translate", b"[" * 100000 + b"]" * 100000)
        assert st == 400 and "nested deeper" in r["error"]
        # Truncated body: the client announces 100 bytes, sends 10 and closes.
        with socket.create_connection(("127.0.0.1", s.port)) as c:
            c.sendall(b"POST /v1/translate HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{\"model\":")
        # Truncated body, client stays: closed after the read timeout, counted as 408.
        t0 = time.time()
        reply = s.raw(b"POST /v1/translate HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{\"model\":")
        assert reply == b"" and 1.4 < time.time() - t0 < 5
        assert s.metrics()['attend_http_requests_total{route="/v1/translate",code="408"}'] == 1
        assert s.post("/v1/translate", {"model": "dates", "text": "11/25/26"})[0] == 200
        assert s.request("GET", "/health")[0] == 200
    finally:
        assert s.stop() == 0


def test_slow_senders_are_cut_off_and_do_not_block_others(models):
    s = Server(models, "--read-timeout-ms", "1500")
    try:
        slow = []
        for _ in range(50):  # slowloris: a header byte every 0.2 s, never finishing
            c = socket.create_connection(("127.0.0.1", s.port))
            c.sendall(b"GET /health HTTP/1.1\r\n")
            slow.append(c)
        t0 = time.time()
        assert s.post("/v1/translate", {"model": "dates", "text": "11/25/26"})[0] == 200
        assert time.time() - t0 < 2.0, "a normal request waited behind slow clients"
        closed = 0
        deadline = time.time() + 6
        while time.time() < deadline and closed < len(slow):
            for c in slow:
                try:
                    c.sendall(b"X")
                except OSError:
                    pass
            time.sleep(0.2)
            closed = 0
            for c in slow:
                c.setblocking(False)
                try:
                    data = c.recv(4096)
                    closed += 1 if data == b"" else 0
                except BlockingIOError:
                    pass
                except OSError:
                    closed += 1
        assert closed == len(slow), f"only {closed} of {len(slow)} slow clients were cut off"
        for c in slow:
            c.close()
        time.sleep(0.2)
        assert s.metrics()["attend_connections"] <= 1
    finally:
        assert s.stop() == 0


def test_too_many_connections_are_closed_and_the_server_recovers(models):
    s = Server(models, "--max-connections", "4")
    try:
        idle = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(8)]
        time.sleep(0.3)
        refused = 0
        for c in idle:
            c.settimeout(0.5)
            try:
                refused += c.recv(1) == b""
            except socket.timeout:
                pass
            except OSError:
                refused += 1
        assert refused == 4
        for c in idle:
            c.close()
        time.sleep(0.2)
        assert s.metrics()["attend_connections_refused_total"] == 4
    finally:
        assert s.stop() == 0


def test_reload_under_load_drops_nothing(models, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(models / "rnn", d)
    s = Server(models, "--threads", "2", specs=[f"dates={d}"])
    try:
        stop = threading.Event()

        def client():
            codes = []
            while not stop.is_set():
                codes.append(s.post("/v1/translate", {"model": "dates", "text": INPUTS})[0])
            return codes

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(client) for _ in range(8)]
            reloads = []
            for _ in range(5):
                while True:
                    st, r = s.post("/v1/models/reload", {"model": "dates"})
                    if st != 409:
                        break
                    time.sleep(0.05)
                reloads.append(st)
            s.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            stop.set()
            codes = [c for f in futures for c in f.result()]
        assert reloads == [200] * 5 and set(codes) == {200} and len(codes) > 20
        _, _, body = s.request("GET", "/v1/models")
        assert json.loads(body)["models"][0]["generation"] == 7
        # A damaged directory: 500, and the old model keeps serving.
        with open(d / "model.safetensors", "r+b") as f:
            f.seek(200)
            f.write(b"\x00" * 64)
        st, r = s.post("/v1/models/reload", {})
        assert st == 500 and "old model keeps serving" in r["error"] and "model.safetensors" in r["error"]
        assert s.post("/v1/translate", {"model": "dates", "text": INPUTS})[0] == 200
    finally:
        assert s.stop() == 0


def test_sigterm_finishes_what_was_read_then_exits_0(models):
    s = Server(models, "--threads", "1")
    many = INPUTS * 12
    open_connections = [http.client.HTTPConnection("127.0.0.1", s.port, timeout=30) for _ in range(2)]
    for c in open_connections:  # kept alive across the signal
        c.request("GET", "/health")
        assert c.getresponse().read() == b'{"status":"ok"}\n'
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(s.post, "/v1/translate", {"model": "tf", "text": many, "beam": 8}) for _ in range(6)]
        s.wait_in_flight(6)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        open_connections[0].request("GET", "/health")
        r = open_connections[0].getresponse()
        assert (r.status, r.read(), r.getheader("Connection")) == (503, b'{"status":"draining"}\n', "close")
        open_connections[1].request("POST", "/v1/translate", body=json.dumps({"model": "tf", "text": "x"}))
        r = open_connections[1].getresponse()
        assert r.status == 503 and b"shutting down" in r.read()
        results = [f.result(timeout=60) for f in futures]
    assert [st for st, _ in results] == [200] * 6
    assert s.proc.wait(timeout=60) == 0  # no second signal: that would cut the drain short
    s.reader.join(timeout=5)
    assert "finishing" in s.log() and "stopped" in s.log()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=2)


def test_a_drain_that_times_out_exits_1(models):
    s = Server(models, "--threads", "1", "--drain-timeout-ms", "1")
    many = INPUTS * 12
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(s.request, "POST", "/v1/translate",
                               json.dumps({"model": "tf", "text": many, "beam": 16})) for _ in range(4)]
        s.wait_in_flight(4)
        assert s.stop() == 1
        for f in futures:
            try:
                f.result(timeout=30)
            except (ConnectionError, http.client.HTTPException):
                pass
    assert "drain timed out" in s.log()


def test_bad_command_lines_fail_clearly(models, tmp_path):
    def run(*args):
        return subprocess.run([CLI, "serve", *map(str, args)], capture_output=True, text=True, timeout=60, env=ENV)

    r = run("--model", models / "rnn")
    assert r.returncode == 2 and "NAME=DIR" in r.stderr
    r = run("--model", f"a={tmp_path / 'missing'}", "--port", "0")
    assert r.returncode == 1 and "model 'a'" in r.stderr and "no such model directory" in r.stderr
    r = run("--model", f"a={models / 'rnn'}", "--model", f"a={models / 'rnn'}")
    assert r.returncode == 2 and "given twice" in r.stderr
    r = run("--model", f"a={models / 'rnn'}", "--port", "70000")
    assert r.returncode == 2 and "--port" in r.stderr
    r = run("--model", f"a={models / 'rnn'}", "--host", "localhost:1")
    assert r.returncode == 2 and "IP address" in r.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = run("--model", f"a={models / 'rnn'}", "--port", taken.getsockname()[1])
        assert r.returncode == 1 and "cannot listen on 127.0.0.1:" in r.stderr


def test_expect_100_continue_is_answered_before_the_body(server):
    body = json.dumps({"model": "dates", "text": INPUTS}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
        c.sendall(b"POST /v1/translate HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert c.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        c.sendall(body)
        reply = recv_all(c)
    assert reply.startswith(b"HTTP/1.1 200") and len(json.loads(reply.split(b"\r\n\r\n", 1)[1])["translations"]) == 5


def test_int8_server_answers_as_attend_translate_in_int8(models):
    """--precision int8: every model decodes with int8 products, exactly as `attend translate --precision int8`."""
    s = Server(models, "--precision", "int8")
    try:
        _, _, body = s.request("GET", "/v1/models")
        assert {m["name"]: m["precision"] for m in json.loads(body)["models"]} == {"dates": "int8", "tf": "int8"}
        for name, sub in (("dates", "rnn"), ("tf", "transformer")):
            status, out = s.post("/v1/translate", {"model": name, "text": INPUTS, "beam": 3, "precision": "int8"})
            assert status == 200, out
            want = attend("translate", "--precision", "int8", "--model", models / sub, "--beam", 3, *INPUTS).stdout
            assert [t["text"] for t in out["translations"]] == want.splitlines()
        status, out = s.post("/v1/translate", {"model": "dates", "text": ["a"], "precision": "fp32"})
        assert status == 400 and "decodes in int8" in out["error"]
    finally:
        assert s.stop() == 0, s.log()
