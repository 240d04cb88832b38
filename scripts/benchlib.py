"""Pieces the benchmark and proof scripts share: the release binary, signing, a server process
that can be SIGKILLed and restarted on the same port and database, a fake chat server that
refuses on a schedule and records every request, and small HTTP helpers. Loopback only;
standard library only (CI has no network but the package registries).

Used by scripts/proof.py, scripts/dispatch-storm.py and scripts/gen_bench_payloads.py.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shared real-world payloads: `../shared/fixtures/bitbucket` from the repository root.
SHARED_FIXTURES = os.environ.get(
    "PR_REMINDER_SHARED_FIXTURES",
    os.path.normpath(os.path.join(ROOT, "..", "shared", "fixtures", "bitbucket")))


def sign(secret: bytes | str, body: bytes) -> str:
    """`X-Hub-Signature` as Bitbucket (Cloud and Data Center) computes it:
    `sha256=<hex HMAC-SHA256(secret, raw body)>`."""
    if isinstance(secret, str):
        secret = secret.encode()
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def sign_slack(secret: str, timestamp: int, body: bytes) -> str:
    """Slack's `X-Slack-Signature`: `v0=<hex HMAC-SHA256(secret, "v0:{ts}:{body}")>`."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def is_datacenter(event_key: str) -> bool:
    """The event key tells the flavour apart, as the service reads it."""
    return event_key.startswith("pr:") or event_key.startswith("diagnostics:")


def delivery_headers(event_key: str, request_id: str, signature: str | None) -> dict:
    """The headers each Bitbucket sends with a delivery: Data Center `X-Request-Id`, Cloud
    `X-Request-UUID` and `X-Attempt-Number`."""
    headers = {"Content-Type": "application/json", "X-Event-Key": event_key}
    if is_datacenter(event_key):
        headers["X-Request-Id"] = request_id
    else:
        headers["X-Request-UUID"] = request_id
        headers["X-Attempt-Number"] = "1"
    if signature is not None:
        headers["X-Hub-Signature"] = signature
    return headers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def release_binary(build: bool = True) -> str:
    """`PR_REMINDER_BIN` if set, else `cargo build --release` (in `CARGO_TARGET_DIR` if set) and
    that binary."""
    given = os.environ.get("PR_REMINDER_BIN")
    if given:
        given = os.path.abspath(given)  # the server runs in its own temporary folder
        if not os.access(given, os.X_OK):
            sys.exit(f"PR_REMINDER_BIN={given} is not an executable")
        return given
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    if not os.path.isabs(target):
        target = os.path.join(ROOT, target)
    if build:
        print("==> cargo build --release", file=sys.stderr, flush=True)
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    path = os.path.join(target, "release", "pr-reminder")
    if not os.access(path, os.X_OK):
        sys.exit(f"no binary at {path}: build it or set PR_REMINDER_BIN")
    return path


def request(method: str, port: int, path: str, body: bytes | None = None,
            headers: dict | None = None, timeout: float = 30.0):
    """One request on a fresh connection: (status, headers dict (lower-case names), body), or
    raises OSError / http.client.HTTPException when the connection fails."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


class Server:
    """The release binary serving on a fixed loopback port, with its log appended to one file
    across restarts (so a search of the log sees every run)."""

    def __init__(self, binary: str, workdir: str, env: dict, config: str | None = None,
                 port: int | None = None, nofile: int | None = None):
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.database = os.path.join(workdir, "pr-reminder.db")
        self.log_path = os.path.join(workdir, "server.log")
        self.config = config
        self.nofile = nofile
        self.env = dict(os.environ)
        for key in list(self.env):
            if key.startswith("PR_REMINDER_") and key != "PR_REMINDER_BIN":
                del self.env[key]
        self.env.update({
            "PR_REMINDER_LISTEN": f"127.0.0.1:{self.port}",
            "PR_REMINDER_DATABASE": self.database,
            "RUST_LOG": "warn",
        })
        self.env.update(env)
        self.process: subprocess.Popen | None = None
        self.starts = 0
        Server.instances.append(self)

    # Every server made, so that a caller can make sure none outlives it (`kill_all`).
    instances: list["Server"] = []

    @classmethod
    def kill_all(cls):
        for server in cls.instances:
            server.kill()

    def args(self, *command: str) -> list[str]:
        config = ["--config", self.config] if self.config else []
        return [self.binary, *config, *command]

    def _limits(self):
        if self.nofile:
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def start(self, ready_timeout: float = 30.0) -> float:
        """Starts the server and waits for `/readyz`; returns the seconds that took."""
        started = time.monotonic()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args("serve"), env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, cwd=self.workdir,
                                        preexec_fn=self._limits if self.nofile else None)
        log.close()
        self.starts += 1
        while time.monotonic() - started < ready_timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode} while "
                                   f"starting; see {self.log_path}")
            try:
                if request("GET", self.port, "/readyz", timeout=1)[0] == 200:
                    return time.monotonic() - started
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no answer from /readyz after {ready_timeout} s; see {self.log_path}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """SIGKILL: nothing the server could still flush on a clean stop may be needed."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def run(self, *command: str) -> subprocess.CompletedProcess:
        """Another subcommand (`check-config`, ...) with the same environment and config."""
        return subprocess.run(self.args(*command), env=self.env, cwd=self.workdir,
                              capture_output=True, timeout=60)

    def open_files(self) -> int | None:
        try:
            return len(os.listdir(f"/proc/{self.process.pid}/fd"))
        except (OSError, AttributeError):
            return None


class FakeChat:
    """A chat server on loopback for every kind of room (HipChat, Slack, Teams, Google Chat):
    it answers `refuse(t)`'s status while that returns one (t: seconds since `start`), else
    `ok_status` (204; 202 on a Teams path), and records `(t, path, status, body)` for every
    request, in order of arrival."""

    def __init__(self, refuse=None, retry_after: int | None = None, refusal_headers=None):
        self.refuse = refuse or (lambda t: None)
        self.retry_after = retry_after
        # More headers for a 429/503 answer, e.g. HipChat's `X-Ratelimit-Reset`.
        self.refusal_headers = refusal_headers or (lambda: {})
        self.log: list[tuple[float, str, int, bytes]] = []
        self.lock = threading.Lock()
        self.started = time.monotonic()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                now = time.monotonic() - fake.started
                status = fake.refuse(now)
                if status is None:
                    status = 202 if "/teams" in self.path else 204
                try:
                    self._answer(status)
                except OSError:
                    pass  # the client is gone (a SIGKILLed server): the attempt still counts
                with fake.lock:
                    fake.log.append((now, self.path, status, body))

            def _answer(self, status: int):
                self.send_response(status)
                if status in (429, 503):
                    if fake.retry_after is not None:
                        self.send_header("Retry-After", str(fake.retry_after))
                    for name, value in fake.refusal_headers().items():
                        self.send_header(name, value)
                if status == 202 or status >= 400:
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                else:
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self):
        """Resets the clock that `refuse` sees."""
        self.started = time.monotonic()

    def delivered(self) -> list[tuple[float, str, bytes]]:
        with self.lock:
            return [(t, p, b) for t, p, s, b in self.log if 200 <= s < 300]

    def close(self):
        self.httpd.shutdown()


def message_text(body: bytes) -> str:
    """Every string of a chat request's JSON body (any room format), joined, with HTML tags
    dropped and entities decoded: the words a reader sees."""
    try:
        value = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
    parts: list[str] = []

    def walk(v):
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(value)
    text = "\n".join(parts)
    text = re.sub(r"<[^>]*>", " ", text)
    return html.unescape(text).replace("\\", "")


# `acme/billing-service-001 #12`: how every message names a PR (in its own line or in a list).
PR_REFERENCE = re.compile(r"([A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+) #(\d+)")


def pr_references(body: bytes) -> set[tuple[str, int]]:
    """The PRs a chat message names, `(repository, number)`, read from its text the same way for
    a PR's own message and for a list (a digest, a summary after an outage)."""
    return {(m.group(1), int(m.group(2))) for m in PR_REFERENCE.finditer(message_text(body))}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]

