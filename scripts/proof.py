#!/usr/bin/env python3
"""Proof under faults: re-runnable figures for how pr-reminder holds up when things go wrong.

    python3 scripts/proof.py            # the whole suite (about 15 minutes on 2 cores)
    python3 scripts/proof.py --quick    # a small slice (about 2 minutes; what CI runs)
    python3 scripts/proof.py --only crash,fuzz

Scenarios (each prints its figures and its verdict against the target in brackets):
  crash    N SIGKILLs (restart after each) during a burst of M signed deliveries while a fake
           HipChat room refuses (503/429) for T seconds, then recovers: acknowledged deliveries
           missing from the database [0], PRs never announced [0], duplicate messages
           [<= 1 per kill], most messages in any 60 s [<= the room's rate], recovery to first
           message and to an empty outbox.
  lock     another process holds BEGIN EXCLUSIVE on the database for 5 s / 12 s / 30 s under
           steady load: answers by status and latency per second, 2xx without a commit [0],
           slowest answer [< 10 s, Bitbucket's timeout], recovery after the lock.
  fuzz     10,000 mutated, correctly signed bodies from ../shared/fixtures/bitbucket (every
           event key; truncation, byte flips, type swaps, nulls, huge numbers, deep nesting,
           invalid UTF-8, duplicate keys, near and over the body limit): 5xx [0], deaths [0].
  forgery  1,000 deliveries with mutated, missing or garbled signatures: refused [100 %].
  secrets  every configurable secret set, RUST_LOG=trace, a representative workload: each
           secret's occurrences in the log and in `check-config` [0].
  slow     1,100 connections that declare a body and send it a byte at a time (or stop):
           GET /healthz latency and a real signed delivery's latency meanwhile, 408s, and the
           open files afterwards; also under an open-file limit of 1,024.

Loopback only, a fresh temporary folder per scenario. The binary is PR_REMINDER_BIN, else
`cargo build --release` (CARGO_TARGET_DIR is honoured). Figures go to the terminal and to
bench-results/proof-<UTC time>.txt (and .json). Exit status 0 when every target is met.
Standard library only.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import http.client
import json
import os
import platform
import queue
import random
import resource
import selectors
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)
import benchlib as bl  # noqa: E402
import gen_bench_payloads as gen  # noqa: E402

SCENARIOS = ["crash", "lock", "fuzz", "forgery", "secrets", "slow"]

PROFILES = {
    "full": {
        "kills": 20, "prs": 100, "per_pr": 10, "outage": 60.0, "burst": 60.0,
        "coalesce": None, "retry_max": None, "drain_deadline": 900.0,
        "locks": [5.0, 12.0, 30.0], "lock_clients": 8,
        "fuzz": 10_000, "forgery": 1_000,
        "slow": 1_100, "slow_limits": [None, 1024], "body_timeout": None,
    },
    "quick": {
        "kills": 3, "prs": 12, "per_pr": 5, "outage": 5.0, "burst": 6.0,
        "coalesce": 1.0, "retry_max": 3, "drain_deadline": 90.0,
        "locks": [3.0], "lock_clients": 4,
        "fuzz": 300, "forgery": 100,
        "slow": 200, "slow_limits": [None], "body_timeout": 2.0,
    },
}

SECRET = "proof-webhook-secret-" + os.urandom(8).hex()
HIPCHAT_RATE = 30  # HipChat's default room rate (README: rates per kind of room)


class Result:
    """One scenario's figures (lines) and checks (name, value, target text, met)."""

    def __init__(self, name: str, title: str):
        self.name, self.title = name, title
        self.lines: list[str] = []
        self.checks: list[tuple[str, object, str, bool]] = []
        self.figures: dict = {}

    def line(self, text: str = ""):
        self.lines.append(text)
        print("   " + text, flush=True)

    def check(self, name: str, value, target: str, ok: bool):
        self.checks.append((name, value, target, bool(ok)))
        print(f"   {'ok  ' if ok else 'FAIL'} {name}: {value} [{target}]", flush=True)

    @property
    def ok(self) -> bool:
        return all(c[3] for c in self.checks)


def say(text: str):
    print(f"==> {text}", file=sys.stderr, flush=True)


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def secs(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


# --- payloads -----------------------------------------------------------------------------------

def cloud_generator(seed: int, repos: int, target_bytes: int = 4096):
    path = gen.DEFAULT_FIXTURE
    template = gen.load_json(path) if os.path.exists(path) else gen.EMBEDDED_TEMPLATE
    return gen.Generator(template, SECRET.encode(), seed, repos, target_bytes)


def pr_bursts(prs: int, per_pr: int, seed: int = 13) -> list[list[tuple[str, bytes]]]:
    """Per PR, `per_pr` Cloud deliveries in the order Bitbucket sends them: created, updated
    (pushes, `per_pr - 2` of them, each a second later), approved. (event key, body) each."""
    g = cloud_generator(seed, repos=prs)  # one PR a repository: no two share a number
    stages: dict[tuple[str, int], list] = collections.defaultdict(list)
    for event, _sig, body in g.generate(prs * 3):
        doc = json.loads(body)
        stages[(doc["repository"]["full_name"], doc["pullrequest"]["id"])].append((event, doc))
    out = []
    for _pr, items in stages.items():
        (created, c), (updated, u), (approved, a) = items
        seq = [(created, c)]
        base = dt.datetime.fromisoformat(u["pullrequest"]["updated_on"])
        for k in range(max(1, per_pr - 2)):
            doc = json.loads(json.dumps(u))
            doc["pullrequest"]["updated_on"] = gen.ts(base + dt.timedelta(seconds=k))
            seq.append((updated, doc))
        seq.append((approved, a))
        out.append([(e, json.dumps(d, separators=(",", ":")).encode()) for e, d in seq])
    return out


def steady_payloads(count: int, seed: int = 7) -> list[tuple[str, bytes]]:
    g = cloud_generator(seed, repos=50)
    return [(e, b) for e, _s, b in g.generate(count)]


def post_delivery(port: int, event: str, body: bytes, request_id: str, timeout: float = 30.0,
                  signature: str | None = None):
    sig = signature if signature is not None else bl.sign(SECRET, body)
    return bl.request("POST", port, "/webhooks/bitbucket", body,
                      bl.delivery_headers(event, request_id, sig), timeout=timeout)


def committed_ids(database: str) -> set[str]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute("SELECT request_id FROM deliveries "
                          "WHERE outcome IN ('processed', 'ignored') AND request_id IS NOT NULL")
        return {r[0] for r in rows}


def new_server(binary: str, tmp: str, env: dict | None = None, config: str | None = None,
               nofile: int | None = None) -> bl.Server:
    base = {"PR_REMINDER_WEBHOOK_SECRET": SECRET}
    base.update(env or {})
    return bl.Server(binary, tmp, base, config=config, nofile=nofile)


def write(path: str, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return path


# --- crash safety -------------------------------------------------------------------------------

def scenario_crash(binary: str, tmp: str, p: dict) -> Result:
    r = Result("crash", "crash safety: SIGKILLs during a burst, chat room down then back")
    kills, outage, burst = p["kills"], p["outage"], p["burst"]
    plan = pr_bursts(p["prs"], p["per_pr"])
    deliveries = [d for seq in plan for d in seq]
    prs = set()
    for seq in plan:
        doc = json.loads(seq[0][1])
        prs.add((doc["repository"]["full_name"], doc["pullrequest"]["id"]))

    def refuse(t: float):
        if t < outage:
            return 503 if int(t) % 2 == 0 else 429
        return None

    fake = bl.FakeChat(refuse, retry_after=2)
    notify = ""
    if p["coalesce"] is not None:
        notify += f"coalesce_seconds = {p['coalesce']}\n"
    if p["retry_max"] is not None:
        notify += f"retry_max_seconds = {p['retry_max']}\n"
    config = write(os.path.join(tmp, "config.toml"),
                   f'[[rooms]]\nname = "proof"\n'
                   f'hipchat_url = "{fake.url("/v2/room/1/notification?auth_token=proof-token")}"\n'
                   + (f"[notify]\n{notify}" if notify else ""))
    server = new_server(binary, tmp, config=config)
    server.start()

    acked: dict[str, str] = {}
    refused: list[tuple[str, int]] = []
    lock = threading.Lock()
    work: queue.Queue = queue.Queue()
    deadline = time.monotonic() + burst + p["drain_deadline"]

    def sender():
        while True:
            item = work.get()
            if item is None:
                return
            n, (event, body) = item
            rid = f"crash-{n}"
            while time.monotonic() < deadline:
                try:
                    status, _h, data = post_delivery(server.port, event, body, rid, timeout=15)
                except (OSError, http.client.HTTPException):
                    time.sleep(0.2)  # killed: Bitbucket would retry; so do we
                    continue
                if 200 <= status < 300:
                    with lock:
                        acked[rid] = json.loads(data).get("status", "?")
                    break
                if status >= 500:
                    time.sleep(0.5)
                    continue
                with lock:
                    refused.append((rid, status))
                break

    senders = [threading.Thread(target=sender, daemon=True) for _ in range(4)]
    for t in senders:
        t.start()
    fake.start()
    t0 = time.monotonic()
    kill_log: list[tuple[float, float]] = []

    def killer():
        for k in range(kills):
            when = t0 + (k + 1) * burst / (kills + 1)
            time.sleep(max(0.0, when - time.monotonic()))
            server.kill()
            at = time.monotonic() - t0
            took = server.start()
            kill_log.append((at, took))

    killing = threading.Thread(target=killer, daemon=True)
    killing.start()
    for n, d in enumerate(deliveries):
        time.sleep(max(0.0, t0 + n * burst / len(deliveries) - time.monotonic()))
        work.put((n, d))
    for _ in senders:
        work.put(None)
    for t in senders:
        t.join()
    killing.join()
    burst_done = time.monotonic() - t0

    # Drain: poll the outbox until nothing is waiting or being sent.
    def open_rows() -> tuple[int, int]:
        with sqlite3.connect(f"file:{server.database}?mode=ro", uri=True, timeout=30) as db:
            waiting = db.execute("SELECT count(*) FROM outbox WHERE state IN "
                                 "('pending', 'retrying', 'sending')").fetchone()[0]
            failed = db.execute("SELECT count(*) FROM outbox WHERE state = 'failed'").fetchone()[0]
            return waiting, failed

    empty_at = None
    while time.monotonic() < deadline:
        waiting, failed = open_rows()
        if waiting == 0:
            empty_at = time.monotonic() - t0
            break
        time.sleep(0.25)
    time.sleep(1.0)  # a message in flight when the row was marked lands in the log first
    waiting, failed = open_rows()
    alive = server.alive()
    server.kill()
    committed = committed_ids(server.database)
    delivered = fake.delivered()
    attempts = list(fake.log)
    fake.close()

    missing = [rid for rid in acked if rid not in committed]
    announced: set = set()
    seen_texts: set = set()
    duplicates = 0
    for _t, _path, body in delivered:
        announced |= bl.pr_references(body)
        text = bl.message_text(body)
        if text in seen_texts:
            duplicates += 1
        seen_texts.add(text)
    never = prs - announced
    times = [t for t, _p, _b in delivered]
    window = max((sum(1 for u in times if t <= u < t + 60) for t in times), default=0)
    gaps = [b - a for a, b in zip(times, times[1:])]
    after = [t for t in times if t >= outage]
    first_after = (after[0] - outage) if after else None
    last_msg = (times[-1] - outage) if times else None
    refusals = sum(1 for a in attempts if a[2] >= 400)

    r.line(f"{len(deliveries)} signed Cloud deliveries for {len(prs)} PRs paced over "
           f"{burst:.0f} s by 4 senders that retry until 2xx (as Bitbucket would)")
    r.line(f"{kills} SIGKILLs (at {', '.join(f'{a:.1f}' for a, _ in kill_log)} s), restart "
           f"after each; restart to /readyz: median "
           f"{ms(bl.percentile([b for _, b in kill_log], 50))}, max "
           f"{ms(max((b for _, b in kill_log), default=None))}")
    r.line(f"fake HipChat room refused (503/429, Retry-After 2) for the first {outage:.0f} s: "
           f"{refusals} refused attempts, then {len(delivered)} messages accepted")
    r.line(f"burst done (every delivery acknowledged) at {burst_done:.1f} s; "
           f"acknowledged {len(acked)} ({collections.Counter(acked.values())}); "
           f"refused with 4xx: {len(refused)}")
    r.line(f"messages: {len(delivered)} for {len(announced & prs)} PRs; "
           f"time from recovery to first message {secs(first_after)}, to the last message "
           f"{secs(last_msg)}, to an empty outbox "
           f"{secs(None if empty_at is None else empty_at - outage)}")
    r.line(f"gap between two accepted messages: min {secs(min(gaps, default=None))}, median "
           f"{secs(bl.percentile(gaps, 50))} (the room's rate allows one every "
           f"{60 / HIPCHAT_RATE:.0f} s)")
    settings = "defaults" if p["coalesce"] is None else \
        f"coalesce_seconds={p['coalesce']}, retry_max_seconds={p['retry_max']}"
    r.line(f"notify settings: {settings}; the room's rate: {HIPCHAT_RATE}/min (HipChat default)")
    r.figures.update(kills=kills, deliveries=len(deliveries), prs=len(prs), outage_s=outage,
                     messages=len(delivered), first_message_after_recovery_s=first_after,
                     last_message_after_recovery_s=last_msg,
                     empty_outbox_after_recovery_s=None if empty_at is None else empty_at - outage,
                     max_per_60s=window, duplicates=duplicates)
    r.check("acknowledged deliveries missing from the database", len(missing), "0",
            not missing)
    r.check("deliveries never acknowledged", len(deliveries) - len(acked) - len(refused), "0",
            len(acked) + len(refused) == len(deliveries))
    r.check("PRs never announced", len(never), "0", not never)
    r.check("outbox rows still waiting / failed", f"{waiting} / {failed}", "0 / 0",
            waiting == 0 and failed == 0)
    r.check("duplicate messages", duplicates, f"<= {kills} (1 per kill)", duplicates <= kills)
    r.check("most messages in any 60 s", window, f"<= {HIPCHAT_RATE}", window <= HIPCHAT_RATE)
    r.check("server alive at the end", alive, "True", alive)
    return r


# --- locked database ----------------------------------------------------------------------------

LOCKER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
print("released", flush=True)
"""


def scenario_lock(binary: str, tmp: str, p: dict) -> Result:
    r = Result("lock", "locked database: another process holds BEGIN EXCLUSIVE")
    payloads = steady_payloads(6000)
    r.line(f"{p['lock_clients']} clients send signed deliveries back to back (30 s client "
           f"timeout); a python3 sqlite3 process takes BEGIN EXCLUSIVE 2 s in and holds it")
    for hold in p["locks"]:
        folder = tempfile.mkdtemp(prefix=f"lock{hold:.0f}-", dir=tmp)
        server = new_server(binary, folder)
        server.start()
        records: list[tuple[float, float, int, bool, str]] = []  # sent, latency, status, RA, id
        lock = threading.Lock()
        stop = threading.Event()
        counter = iter(range(10**9))
        t0 = time.monotonic()

        def client(c: int):
            while not stop.is_set():
                n = next(counter)
                event, body = payloads[n % len(payloads)]
                rid = f"lock{hold:.0f}-{n}"
                sent = time.monotonic()
                try:
                    status, headers, _ = post_delivery(server.port, event, body, rid, timeout=30)
                    ra = "retry-after" in headers
                except (OSError, http.client.HTTPException):
                    status, ra = 0, False
                with lock:
                    records.append((sent - t0, time.monotonic() - sent, status, ra, rid))

        threads = [threading.Thread(target=client, args=(c,), daemon=True)
                   for c in range(p["lock_clients"])]
        for t in threads:
            t.start()
        time.sleep(2.0)
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, server.database, str(hold)],
                                  stdout=subprocess.PIPE, text=True)
        assert locker.stdout.readline().strip() == "locked"
        locked_at = time.monotonic() - t0
        assert locker.stdout.readline().strip() == "released"
        released_at = time.monotonic() - t0
        locker.wait()
        time.sleep(8.0)
        stop.set()
        for t in threads:
            t.join()
        alive = server.alive()
        server.kill()
        committed = committed_ids(server.database)

        ok = [x for x in records if 200 <= x[2] < 300]
        uncommitted = [x for x in ok if x[4] not in committed]
        during = [x for x in records if locked_at <= x[0] < released_at]
        slowest = max((x[1] for x in records), default=0.0)
        s503 = [x for x in records if x[2] == 503]
        recovered = [x[0] + x[1] - released_at for x in ok if x[0] + x[1] >= released_at]
        first_ok_after = min(recovered, default=None)
        r.line("")
        r.line(f"lock held {released_at - locked_at:.1f} s (from {locked_at:.1f} s); "
               f"{len(records)} requests: "
               + ", ".join(f"{k}: {v}" for k, v in sorted(collections.Counter(
                   x[2] for x in records).items()))
               + f"; 503 with Retry-After: {sum(1 for x in s503 if x[3])}/{len(s503)}")
        r.line(f"  during the lock: {len(during)} requests, latency p50 "
               f"{ms(bl.percentile([x[1] for x in during], 50))}, p99 "
               f"{ms(bl.percentile([x[1] for x in during], 99))}, max "
               f"{ms(max((x[1] for x in during), default=None))}; first 2xx after the release "
               f"{secs(first_ok_after)}")
        r.line("  per second (relative to the lock): requests sent / 2xx / 503 / other, "
               "max latency")
        buckets = collections.defaultdict(list)
        for x in records:
            buckets[int((x[0] - locked_at) // 1)].append(x)
        for second in sorted(buckets):
            b = buckets[second]
            c2 = sum(1 for x in b if 200 <= x[2] < 300)
            c5 = sum(1 for x in b if x[2] == 503)
            r.line(f"    {second:+4d} s  {len(b):4d} / {c2:4d} / {c5:4d} / "
                   f"{len(b) - c2 - c5:3d}  max {ms(max(x[1] for x in b))}")
        r.figures[f"lock_{hold:.0f}s"] = {
            "requests": len(records), "ok": len(ok), "503": len(s503),
            "max_latency_s": slowest, "first_2xx_after_release_s": first_ok_after,
            "uncommitted_2xx": len(uncommitted)}
        r.check(f"{hold:.0f} s lock: 2xx without a commit", len(uncommitted), "0",
                not uncommitted)
        r.check(f"{hold:.0f} s lock: slowest answer", secs(slowest), "< 10 s", slowest < 10)
        r.check(f"{hold:.0f} s lock: 503s carrying Retry-After",
                f"{sum(1 for x in s503 if x[3])}/{len(s503)}", "all",
                all(x[3] for x in s503))
        r.check(f"{hold:.0f} s lock: recovered (a 2xx within 5 s of the release)",
                secs(first_ok_after), "< 5 s", first_ok_after is not None and first_ok_after < 5)
        r.check(f"{hold:.0f} s lock: answers other than 2xx/503", sum(
            1 for x in records if not (200 <= x[2] < 300 or x[2] == 503)), "0",
            all(200 <= x[2] < 300 or x[2] == 503 for x in records))
        r.check(f"{hold:.0f} s lock: server alive", alive, "True", alive)
    return r


# --- fuzzing ------------------------------------------------------------------------------------

def shared_fixtures() -> list[tuple[str, str, bytes]] | None:
    """(file, event key, body) of every webhook payload of ../shared (Cloud and Data Center).
    None when the folder is missing (a failure under CI=true, as in the Rust tests)."""
    index = os.path.join(bl.SHARED_FIXTURES, "index.json")
    if not os.path.exists(index):
        if os.environ.get("CI") == "true":
            sys.exit(f"CI=true but the shared Bitbucket fixtures are missing at "
                     f"{bl.SHARED_FIXTURES}")
        return None
    with open(index) as f:
        entries = json.load(f)["payloads"]
    out = []
    for e in entries:
        if e["flavor"] in ("cloud", "data-center") and e.get("event_key"):
            with open(os.path.join(bl.SHARED_FIXTURES, e["file"]), "rb") as f:
                out.append((e["file"], e["event_key"], f.read()))
    return out


def _paths(value, at=()):
    yield at
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, at + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, at + (i,))


def _replace(doc, rng: random.Random, make):
    paths = list(_paths(doc))[1:]
    if not paths:
        return doc
    path = rng.choice(paths)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = make(parent[path[-1]])
    return doc


MARK = "\u0001splice\u0001"


def mutate(kind: str, body: bytes, rng: random.Random, limit: int) -> bytes:
    """One mutation of a real body, by name."""
    if kind == "truncate":
        return body[:rng.randrange(len(body))]
    if kind == "byte_flips":
        out = bytearray(body)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= rng.randint(1, 255)
        return bytes(out)
    if kind == "invalid_utf8":
        out = bytearray(body)
        quotes = [i for i, b in enumerate(out) if b == 0x22]
        at = rng.choice(quotes) + 1 if quotes else rng.randrange(len(out))
        out[at:at] = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                 b"\\ud800", b"\x00"])
        return bytes(out)
    if kind == "duplicate_keys":
        # The same key again, with another value, inside the first object of the body.
        text = body.decode("utf-8", "replace")
        doc = json.loads(body)
        key = rng.choice(list(doc)) if isinstance(doc, dict) and doc else "x"
        at = text.index("{") + 1
        dup = json.dumps(key) + ":" + rng.choice(["null", "1", '"x"', "[]", "{}"]) + ","
        return (text[:at] + dup + text[at:]).encode()
    if kind == "over_limit":
        return body + b" " * (limit - len(body) + rng.randint(1, 64))
    if kind == "near_limit":
        return body + b" " * max(0, limit - len(body) - rng.randint(0, 64))
    doc = json.loads(body)
    splice = None
    if kind == "type_swaps":
        swaps = [lambda v: str(v), lambda v: [v], lambda v: {"value": v},
                 lambda v: 1 if not isinstance(v, int) else "1", lambda v: True,
                 lambda v: -1.5e300]
        for _ in range(rng.randint(1, 4)):
            doc = _replace(doc, rng, rng.choice(swaps))
    elif kind == "nulls":
        for _ in range(rng.randint(1, 6)):
            doc = _replace(doc, rng, lambda v: None)
    elif kind == "huge_numbers":
        splice = rng.choice(["1" * 500, "-" + "9" * 40, "1e999999", "18446744073709551616",
                             "-9223372036854775809", "0." + "0" * 400 + "1"])
        doc = _replace(doc, rng, lambda v: MARK)
    elif kind == "deep_nesting":
        depth = rng.choice([64, 127, 128, 129, 500, 20_000])
        splice = "[" * depth + "1" + "]" * depth if rng.random() < 0.5 else \
            '{"a":' * depth + "1" + "}" * depth
        doc = _replace(doc, rng, lambda v: MARK)
    out = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    if splice is not None:
        out = out.replace(json.dumps(MARK), splice, 1)
    return out.encode()


MUTATIONS = ["truncate", "byte_flips", "type_swaps", "nulls", "huge_numbers", "deep_nesting",
             "invalid_utf8", "duplicate_keys", "near_limit", "over_limit", "other_event_key"]
LIMIT = 1024 * 1024  # the default max_body_bytes


def scenario_fuzz(binary: str, tmp: str, p: dict) -> Result:
    r = Result("fuzz", "fuzzing: mutated, correctly signed real deliveries")
    fixtures = shared_fixtures()
    if fixtures is None:
        r.line(f"SKIPPED: shared Bitbucket fixtures not found at {bl.SHARED_FIXTURES}")
        return r
    keys = sorted({k for _f, k, _b in fixtures})
    server = new_server(binary, tmp)
    server.start()
    pid = server.process.pid
    rng = random.Random(20261130)
    count = p["fuzz"]
    jobs = []
    for n in range(count):
        file, key, body = fixtures[n % len(fixtures)]
        # 11 kinds and 85 bodies share no factor: every (body, kind) pair within 935 bodies.
        kind = MUTATIONS[n % len(MUTATIONS)]
        if kind == "other_event_key":
            key = keys[n % len(keys)]
            if rng.random() < 0.5:
                body = mutate("byte_flips", body, rng, LIMIT)
        else:
            body = mutate(kind, body, rng, LIMIT)
        jobs.append((n, kind, key, body))
    results: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    work: queue.Queue = queue.Queue()
    for j in jobs:
        work.put(j)
    started = time.monotonic()

    def worker():
        while True:
            try:
                n, kind, key, body = work.get_nowait()
            except queue.Empty:
                return
            try:
                status, _h, _d = post_delivery(server.port, key, body, f"fuzz-{n}", timeout=30)
            except (OSError, http.client.HTTPException):
                status = 0
            with lock:
                results.append((kind, key, status))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    alive = server.alive() and server.process.pid == pid
    try:
        health = bl.request("GET", server.port, "/healthz", timeout=5)[0]
    except OSError:
        health = 0
    server.stop()
    by_status = collections.Counter(s for _k, _e, s in results)
    five = [x for x in results if x[2] >= 500]
    dropped = [x for x in results if x[2] == 0]
    r.line(f"{len(results)} bodies from {len(fixtures)} real deliveries "
           f"({len(keys)} event keys, every one used) in {took:.1f} s, 4 connections at a time")
    r.line("answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items())))
    per_kind = collections.defaultdict(collections.Counter)
    for kind, _key, status in results:
        per_kind[kind][status] += 1
    for kind in MUTATIONS:
        r.line(f"  {kind:16s} " + ", ".join(f"{k}: {v}" for k, v in sorted(per_kind[kind].items())))
    r.figures.update(bodies=len(results), statuses=dict(by_status), five_xx=len(five),
                     event_keys=len(keys))
    r.check("5xx answers", len(five), "0", not five)
    r.check("connections dropped without an answer", len(dropped), "0", not dropped)
    r.check("process deaths", 0 if alive else 1, "0", alive)
    r.check("GET /healthz afterwards", health, "200", health == 200)
    return r


# --- forgery ------------------------------------------------------------------------------------

def forged(kind: str, body: bytes, rng: random.Random):
    good = bl.sign(SECRET, body)
    hexpart = good.split("=", 1)[1]
    if kind == "one_hex_digit":
        i = rng.randrange(len(hexpart))
        c = rng.choice([d for d in "0123456789abcdef" if d != hexpart[i]])
        return "sha256=" + hexpart[:i] + c + hexpart[i + 1:]
    if kind == "wrong_secret":
        return bl.sign(SECRET + "x", body)
    if kind == "other_body":
        return bl.sign(SECRET, body + b" ")
    if kind == "truncated":
        return good[:rng.randrange(7, len(good))]
    if kind == "extended":
        return good + rng.choice("0123456789abcdef")
    if kind == "sha1_prefix":
        return "sha1=" + hexpart
    if kind == "no_prefix":
        return hexpart
    if kind == "empty":
        return ""
    if kind == "missing":
        return None
    if kind == "garbage":
        return "sha256=" + "".join(rng.choice("ghijklmnop!@# ") for _ in range(64))
    if kind == "non_ascii":
        return ("sha256=" + hexpart[:-2] + "\u00e9\u00e9").encode("latin-1")
    if kind == "empty_secret":
        return bl.sign(b"", body)
    return "sha256=" + "0" * 64


FORGERIES = ["one_hex_digit", "wrong_secret", "other_body", "truncated", "extended",
             "sha1_prefix", "no_prefix", "empty", "missing", "garbage", "non_ascii",
             "empty_secret", "zeros"]


def scenario_forgery(binary: str, tmp: str, p: dict) -> Result:
    r = Result("forgery", "forgery: mutated, missing or garbled signatures")
    payloads = steady_payloads(60, seed=11)
    server = new_server(binary, tmp)
    server.start()
    rng = random.Random(4)
    statuses = collections.Counter()
    per_kind = collections.defaultdict(collections.Counter)
    accepted = []
    for n in range(p["forgery"]):
        kind = FORGERIES[n % len(FORGERIES)]
        event, body = payloads[n % len(payloads)]
        sig = forged(kind, body, rng)
        rid = f"forged-{n}"
        headers = bl.delivery_headers(event, rid, None)
        if sig is not None:
            headers["X-Hub-Signature"] = sig
        try:
            status = bl.request("POST", server.port, "/webhooks/bitbucket", body, headers)[0]
        except (OSError, http.client.HTTPException):
            status = 0
        statuses[status] += 1
        per_kind[kind][status] += 1
        if 200 <= status < 300:
            accepted.append(rid)
    # A right signature still gets in (the refusals are not a server that refuses everything).
    event, body = payloads[0]
    control = post_delivery(server.port, event, body, "forgery-control")[0]
    server.kill()
    stored = [rid for rid in committed_ids(server.database) if rid.startswith("forged-")]
    total = p["forgery"]
    refused = total - len(accepted)
    r.line(f"{total} deliveries, {len(FORGERIES)} kinds of forgery in turn: "
           + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    for kind in FORGERIES:
        r.line(f"  {kind:14s} " + ", ".join(f"{k}: {v}" for k, v in sorted(per_kind[kind].items())))
    r.figures.update(forged=total, refused=refused, stored=len(stored))
    r.check("refused", f"{refused}/{total} ({100 * refused / total:.1f} %)", "100 %",
            refused == total)
    r.check("forged deliveries stored", len(stored), "0", not stored)
    r.check("a correctly signed delivery afterwards", control, "200", control == 200)
    return r


# --- secrets ------------------------------------------------------------------------------------

def scenario_secrets(binary: str, tmp: str, p: dict) -> Result:
    r = Result("secrets", "secrets: every configured secret vs. the trace log and check-config")
    tok = lambda name: f"{name}{os.urandom(12).hex()}"  # noqa: E731
    s = {
        "webhook_secret (current)": SECRET,
        "webhook_secret (previous, rotation)": tok("oldhooksecret"),
        "sweep.token": tok("sweeptoken"),
        "commands.hipchat_token": tok("hipchatcommand"),
        "commands.slack_signing_secret": tok("slacksigning"),
        "commands.mattermost_token": tok("mattermosttoken"),
        "rooms hipchat_url auth_token": tok("hipchatauth"),
        "rooms hipchat_token (Bearer)": tok("hipchatbearer"),
        "rooms slack_webhook_url path": tok("slackhook"),
        "rooms teams_webhook_url sig": tok("teamssig"),
        "rooms google_chat key": tok("gchatkey"),
        "rooms google_chat token": tok("gchattoken"),
        "unreachable room's URL token": tok("deadroom"),
        "PR_REMINDER_SLACK_WEBHOOK_URL path": tok("envslack"),
    }
    dead_token = s["unreachable room's URL token"]
    fake = bl.FakeChat(lambda t: 500 if t < 1.0 else None)
    dead_port = bl.free_port()
    fake.start()
    urls = {
        "hipchat": fake.url(f"/hipchat/v2/room/1/notification?auth_token={s['rooms hipchat_url auth_token']}"),
        "hipchat-bearer": fake.url("/hipchat/v2/room/2/notification"),
        "slack": fake.url(f"/slack/services/T000/B000/{s['rooms slack_webhook_url path']}"),
        "teams": fake.url(f"/teams/workflows/abc/triggers/manual/paths/invoke?api-version=1"
                          f"&sig={s['rooms teams_webhook_url sig']}"),
        "gchat": fake.url(f"/gchat/v1/spaces/AAA/messages?key={s['rooms google_chat key']}"
                          f"&token={s['rooms google_chat token']}"),
        "dead": f"http://127.0.0.1:{dead_port}/services/T1/B1/{dead_token}",
    }
    config = write(os.path.join(tmp, "config.toml"), f"""
webhook_secret = ["{s['webhook_secret (current)']}", "{s['webhook_secret (previous, rotation)']}"]
log_format = "json"

[notify]
coalesce_seconds = 0.5
retry_min_ms = 200
retry_max_seconds = 1
max_attempts = 3

[sweep]
token = "{s['sweep.token']}"
min_interval_minutes = 0

[commands]
hipchat_token = "{s['commands.hipchat_token']}"
slack_signing_secret = "{s['commands.slack_signing_secret']}"
mattermost_token = "{s['commands.mattermost_token']}"

[[rooms]]
name = "hipchat"
hipchat_url = "{urls['hipchat']}"

[[rooms]]
name = "hipchat-bearer"
hipchat_url = "{urls['hipchat-bearer']}"
hipchat_token = "{s['rooms hipchat_token (Bearer)']}"

[[rooms]]
name = "slack"
slack_webhook_url = "{urls['slack']}"

[[rooms]]
name = "teams"
teams_webhook_url = "{urls['teams']}"

[[rooms]]
name = "gchat"
google_chat_webhook_url = "{urls['gchat']}"

[[rooms]]
name = "dead"
slack_webhook_url = "{urls['dead']}"

[[routes]]
repositories = ["acme*/*"]
rooms = ["hipchat", "hipchat-bearer", "slack", "teams", "gchat", "dead"]

[[users]]
bitbucket = "someone"
hipchat = "someone"
slack = "U000"
""")
    # The webhook secrets come from the file's list (both secrets of a rotation).
    env = {"RUST_LOG": "trace",
           "PR_REMINDER_SLACK_WEBHOOK_URL":
               fake.url(f"/slack/services/T9/B9/{s['PR_REMINDER_SLACK_WEBHOOK_URL path']}")}
    server = bl.Server(binary, tmp, env, config=config)
    check = server.run("check-config")
    check_text = check.stdout.decode("utf-8", "replace") + check.stderr.decode("utf-8", "replace")
    server.start()
    port = server.port
    # The workload: deliveries signed with each secret of the rotation, forged and unsigned
    # ones, the sweep with the right and a wrong token, each chat command right and wrong.
    answers = collections.Counter()
    g = cloud_generator(5, repos=3)
    for n, (event, _sig, body) in enumerate(g.generate(9)):
        secret = SECRET if n % 2 == 0 else s["webhook_secret (previous, rotation)"]
        answers["delivery"] += post_delivery(port, event, body, f"secret-{n}",
                                             signature=bl.sign(secret, body))[0] == 200
        post_delivery(port, event, body, f"forged-{n}", signature=bl.sign("nope", body))
    answers["sweep ok"] = bl.request("POST", port, "/sweep", b"", {
        "Authorization": f"Bearer {s['sweep.token']}"})[0]
    answers["sweep wrong"] = bl.request("POST", port, "/sweep", b"", {
        "Authorization": f"Bearer {s['sweep.token']}x"})[0]
    hip = json.dumps({"event": "room_message", "item": {
        "message": {"message": "/reviews", "from": {"mention_name": "someone", "name": "S"}},
        "room": {"name": "hipchat"}}}).encode()
    answers["hipchat command"] = bl.request(
        "POST", port, f"/commands/hipchat/{s['commands.hipchat_token']}", hip,
        {"Content-Type": "application/json"})[0]
    answers["hipchat command, wrong token"] = bl.request(
        "POST", port, f"/commands/hipchat/{s['commands.hipchat_token']}x", hip,
        {"Content-Type": "application/json"})[0]
    form = b"command=%2Freviews&text=&user_id=U000&user_name=someone&channel_name=slack"
    ts = int(time.time())
    answers["slack command"] = bl.request("POST", port, "/commands/slack", form, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": bl.sign_slack(s["commands.slack_signing_secret"], ts, form)})[0]
    answers["slack command, wrong signature"] = bl.request("POST", port, "/commands/slack", form, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": bl.sign_slack("wrong", ts, form)})[0]
    answers["mattermost command"] = bl.request("POST", port, "/commands/slack", form, {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": f"Token {s['commands.mattermost_token']}"})[0]
    answers["mattermost command, wrong token"] = bl.request("POST", port, "/commands/slack", form, {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": f"Token {s['commands.mattermost_token']}x"})[0]
    # Let every room get its messages (the fake refuses the first second: errors get logged).
    deadline = time.monotonic() + 30
    rooms = ["/hipchat/v2/room/1", "/hipchat/v2/room/2", "/slack/services/T000", "/teams/",
             "/gchat/"]
    while time.monotonic() < deadline:
        paths = [path for _t, path, _b in fake.delivered()]
        if all(any(x.startswith(room) for x in paths) for room in rooms):
            break
        time.sleep(0.2)
    time.sleep(3.0)  # the unreachable room fails its attempts meanwhile
    reached = sorted({room for room in rooms if any(
        x.startswith(room) for _t, x, _b in fake.delivered())})
    # The control: the URL tokens did reach the chat server (the search looks for real values).
    paths = " ".join(path for _t, path, _s, _b in fake.log)
    url_secrets = [v for k, v in s.items() if k.startswith("rooms ") and "Bearer" not in k]
    seen_by_chat = sum(1 for v in url_secrets if v in paths)
    server.stop()
    fake.close()
    with open(server.log_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    with open(server.database, "rb") as f:
        database = f.read().decode("latin-1")
    r.line(f"log at RUST_LOG=trace: {len(log.splitlines())} lines, {len(log) // 1024} KiB; "
           f"check-config: {len(check_text.splitlines())} lines (exit {check.returncode})")
    r.line("workload: " + ", ".join(f"{k}: {v}" for k, v in answers.items())
           + f"; rooms that got messages: {len(reached)}/{len(rooms)} (+1 unreachable)")
    total = 0
    for name, value in s.items():
        in_log, in_check, in_db = log.count(value), check_text.count(value), database.count(value)
        total += in_log + in_check
        r.line(f"  {name:38s} log {in_log}, check-config {in_check}, database {in_db}")
    r.figures.update(secrets=len(s), occurrences=total, log_lines=len(log.splitlines()))
    r.check("secrets configured and searched for", len(s), ">= 14", len(s) >= 14)
    r.check("occurrences of a secret in the log and check-config", total, "0", total == 0)
    r.check("check-config succeeded", check.returncode, "0", check.returncode == 0)
    r.check("rooms reached through their secret URLs", f"{len(reached)}/{len(rooms)}",
            "all", len(reached) == len(rooms))
    r.check("control: URL tokens the fake chat server saw in its request paths",
            f"{seen_by_chat}/{len(url_secrets)}", "all", seen_by_chat == len(url_secrets))
    r.check("signed deliveries accepted (both secrets)", answers["delivery"], "9",
            answers["delivery"] == 9)
    return r


# --- slow clients -------------------------------------------------------------------------------

def scenario_slow(binary: str, tmp: str, p: dict) -> Result:
    r = Result("slow", "slow clients: connections that trickle or stall their bodies")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    count = p["slow"]
    event, body = steady_payloads(3, seed=3)[0]
    for nofile in p["slow_limits"]:
        folder = tempfile.mkdtemp(prefix=f"slow{nofile or 'default'}-", dir=tmp)
        config = None
        if p["body_timeout"] is not None:
            config = write(os.path.join(folder, "config.toml"),
                           f"body_timeout_seconds = {p['body_timeout']}\n")
        server = new_server(binary, folder, config=config, nofile=nofile)
        server.start()
        timeout = p["body_timeout"] or 10.0
        baseline_fds = server.open_files()
        label = f"open-file limit {nofile}" if nofile else \
            f"the machine's open-file limit ({resource.getrlimit(resource.RLIMIT_NOFILE)[1]})"

        health: list[tuple[float, float, int]] = []
        real: list[tuple[float, float, int]] = []
        stop = threading.Event()
        t0 = time.monotonic()

        def probe(kind: str):
            n = 0
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    if kind == "health":
                        status = bl.request("GET", server.port, "/healthz", timeout=30)[0]
                    else:
                        n += 1
                        status = post_delivery(server.port, event, body,
                                               f"slow-real-{nofile}-{n}", timeout=30)[0]
                except (OSError, http.client.HTTPException):
                    status = 0
                took = time.monotonic() - sent
                (health if kind == "health" else real).append((sent - t0, took, status))
                time.sleep(0.1 if kind == "health" else 0.5)

        # Open the slow connections: headers and the first byte of a 4 KiB body; half of them
        # then send a byte a second, the other half nothing more.
        socks = []
        head = (f"POST /webhooks/bitbucket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: 4096\r\n"
                f"X-Event-Key: pullrequest:created\r\nX-Request-UUID: slow\r\n"
                f"X-Hub-Signature: sha256={'0' * 64}\r\n\r\n{{").encode()
        # The probes run from just before the first slow connection opens.
        probes = [threading.Thread(target=probe, args=(k,), daemon=True)
                  for k in ("health", "real")]
        for t in probes:
            t.start()
        time.sleep(0.3)
        opened_at = time.monotonic()
        connect_errors = 0
        for i in range(count):
            s = socket.socket()
            s.settimeout(5)
            try:
                # The kernel completes the handshake even for a connection the server has not
                # accepted yet (it waits in the listen backlog), so the head is sent either way.
                s.connect(("127.0.0.1", server.port))
                s.sendall(head)
            except OSError:
                connect_errors += 1
                s.close()
                continue
            s.setblocking(False)
            socks.append(s)
        open_time = time.monotonic() - opened_at
        peak_fds = server.open_files()
        answers: dict[int, bytes] = {}
        closed_silently = 0
        first_answer = None  # when the first slow connection was answered or closed
        end = time.monotonic() + timeout * 2 + 5
        last_trickle = 0.0
        live = {s.fileno(): s for s in socks}
        watch = selectors.DefaultSelector()  # epoll: select() stops at descriptor 1024
        for s in socks:
            watch.register(s, selectors.EVENT_READ)
        while live and time.monotonic() < end:
            if time.monotonic() - last_trickle >= 1.0:
                last_trickle = time.monotonic()
                for i, s in enumerate(list(live.values())):
                    if i % 2 == 0:
                        try:
                            s.send(b" ")
                        except OSError:
                            pass
                peak_fds = max(peak_fds or 0, server.open_files() or 0)
            for key, _events in watch.select(0.2):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                fd = s.fileno()
                if first_answer is None:
                    first_answer = time.monotonic() - t0
                if data:
                    answers[fd] = answers.get(fd, b"") + data
                    if b"\r\n\r\n" not in answers[fd]:
                        continue
                elif fd not in answers:
                    closed_silently += 1
                live.pop(fd, None)
                watch.unregister(s)
                s.close()
        still_open = len(live)
        for s in live.values():
            s.close()
        all_done = time.monotonic() - t0
        time.sleep(1.0)
        stop.set()
        for t in probes:
            t.join()
        after_fds = server.open_files()
        alive = server.alive()
        server.stop()
        others = collections.Counter(a.split(b"\r\n\r\n", 1)[-1][:200] for a in answers.values()
                                     if not a.startswith(b"HTTP/1.1 408"))
        for answer, n in others.items():
            r.line(f"  other answer x{n}: {answer!r}")
        statuses = collections.Counter(
            int(a.split(b" ", 2)[1]) if a.startswith(b"HTTP/") else -1 for a in answers.values())
        # While they were open: from the first connection opened until the last one was answered
        # (cut off or closed): the whole time an attacker held any.
        start = opened_at - t0
        until = all_done
        during = lambda xs: [x for x in xs if start <= x[0] < until]  # noqa: E731
        h, d = during(health), during(real)
        h_lat = [x[1] for x in h]
        d_ok = [x for x in d if x[2] == 200]
        r.line("")
        r.line(f"{label}: {len(socks)} slow connections opened in {open_time:.1f} s "
               f"({connect_errors} refused at connect); body_timeout_seconds = {timeout:g}")
        r.line(f"  answers to the slow connections: "
               + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
               + f"; closed without an answer: {closed_silently}; still open after "
               f"{timeout * 2 + 5:.0f} s: {still_open}; all gone {all_done:.1f} s after opening")
        r.line(f"  while they were open ({start:.1f} s to {until:.1f} s, when the last was "
               f"answered; the first at {first_answer or 0:.1f} s):")
        r.line(f"  GET /healthz: {len(h)} probes, p50 "
               f"{ms(bl.percentile(h_lat, 50))}, p99 {ms(bl.percentile(h_lat, 99))}, max "
               f"{ms(max(h_lat, default=None))}, failures {sum(1 for x in h if x[2] != 200)}")
        r.line(f"  real signed deliveries: {len(d)} sent, {len(d_ok)} answered 200, "
               f"latency p50 {ms(bl.percentile([x[1] for x in d], 50))}, max "
               f"{ms(max((x[1] for x in d), default=None))}")
        r.line(f"  server open files: {baseline_fds} before, {peak_fds} at the peak, "
               f"{after_fds} after")
        key = f"limit_{nofile or 'default'}"
        r.figures[key] = {"slow": len(socks), "statuses": dict(statuses),
                          "healthz_p50_s": bl.percentile(h_lat, 50),
                          "healthz_p99_s": bl.percentile(h_lat, 99),
                          "delivery_p50_s": bl.percentile([x[1] for x in d], 50),
                          "fds": [baseline_fds, peak_fds, after_fds]}
        n408 = statuses.get(408, 0)
        r.check(f"{label}: slow connections answered 408", f"{n408}/{len(socks)}", "all",
                n408 == len(socks))
        r.check(f"{label}: /healthz failures while they were open",
                sum(1 for x in h if x[2] != 200), "0", h and all(x[2] == 200 for x in h))
        r.check(f"{label}: /healthz p99 while they were open", ms(bl.percentile(h_lat, 99)),
                "< 1000 ms", h_lat and bl.percentile(h_lat, 99) < 1.0)
        r.check(f"{label}: slowest real delivery meanwhile",
                ms(max((x[1] for x in d), default=None)), "< 10 s (Bitbucket's timeout)",
                d and max(x[1] for x in d) < 10.0)
        r.check(f"{label}: real deliveries answered 200 meanwhile", f"{len(d_ok)}/{len(d)}",
                "all", d and len(d_ok) == len(d))
        r.check(f"{label}: open files back to the baseline (+8)", after_fds,
                f"<= {(baseline_fds or 0) + 8}",
                after_fds is not None and after_fds <= (baseline_fds or 0) + 8)
        r.check(f"{label}: server alive", alive, "True", alive)
    return r


# --- the run ------------------------------------------------------------------------------------

RUNNERS = {"crash": scenario_crash, "lock": scenario_lock, "fuzz": scenario_fuzz,
           "forgery": scenario_forgery, "secrets": scenario_secrets, "slow": scenario_slow}


def machine() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores ({cpu}); {platform.system()} {platform.release()}; "
            f"load average at start {load}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--quick", action="store_true", help="the small slice CI runs")
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help=f"comma-separated scenarios (default all: {','.join(SCENARIOS)})")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = ap.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in RUNNERS]
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(unknown)}")
    profile = "quick" if args.quick else "full"
    p = PROFILES[profile]
    binary = bl.release_binary()
    commit = subprocess.run(["git", "-C", bl.ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    header = [f"pr-reminder proof under faults ({profile}), {stamp}, commit {commit}",
              f"machine: {machine()}", f"binary: {binary}"]
    for line in header:
        print(line, flush=True)
    root = tempfile.mkdtemp(prefix="pr-reminder-proof-")
    results: list[Result] = []
    started = time.monotonic()
    try:
        for name in only:
            say(f"{name}")
            folder = os.path.join(root, name)
            os.makedirs(folder)
            began = time.monotonic()
            try:
                result = RUNNERS[name](binary, folder, p)
            except Exception as err:  # a scenario that cannot run is a failed scenario
                result = Result(name, name)
                result.check("scenario ran", f"{type(err).__name__}: {err}", "no error", False)
            result.figures["seconds"] = round(time.monotonic() - began, 1)
            results.append(result)
            print(f"   ({name}: {result.figures['seconds']} s)", flush=True)
    finally:
        bl.Server.kill_all()  # none outlives the suite, whatever happened to its scenario
        if args.keep or not all(r.ok for r in results):
            print(f"temporary folders kept in {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    total = time.monotonic() - started
    ok = all(r.ok for r in results)

    out_dir = os.path.join(bl.ROOT, "bench-results")
    os.makedirs(out_dir, exist_ok=True)
    text = header + [""]
    for r in results:
        text.append(f"## {r.name}: {r.title} ({r.figures['seconds']} s)")
        text.extend("   " + line for line in r.lines)
        for name, value, target, met in r.checks:
            text.append(f"   {'ok  ' if met else 'FAIL'} {name}: {value} [{target}]")
        text.append("")
    text.append(f"total {total:.0f} s; RESULT: {'OK' if ok else 'FAILED'}")
    base = os.path.join(out_dir, f"proof-{profile}-{stamp}")
    write(base + ".txt", "\n".join(text) + "\n")
    with open(base + ".json", "w") as f:
        json.dump({"profile": profile, "stamp": stamp, "commit": commit, "machine": machine(),
                   "ok": ok, "scenarios": {r.name: {"figures": r.figures, "checks": [
                       {"name": c[0], "value": str(c[1]), "target": c[2], "ok": c[3]}
                       for c in r.checks]} for r in results}}, f, indent=1, default=str)
    print(f"\nRESULT: {'OK' if ok else 'FAILED'} ({total:.0f} s); figures in "
          f"{os.path.relpath(base, bl.ROOT)}.txt", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
