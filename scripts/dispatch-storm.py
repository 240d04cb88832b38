#!/usr/bin/env python3
"""Measures the notification dispatcher against a fake HipChat that rate-limits it.

Starts a fake HipChat room on loopback that answers 429 (Retry-After, X-Ratelimit-Reset) for
the first STORM seconds and 204 afterwards, starts the release binary pointed at it, opens
PRS pull requests through signed webhooks, and records every request the fake receives.
Prints: requests and 429s per minute, the most 2xx in any 60 s window (the room's limit is 30),
how long the queue took to drain, and whether every PR got exactly one delivered message.

    cargo build --release && python3 scripts/dispatch-storm.py [--prs 20] [--storm 20]

The binary is PR_REMINDER_BIN, else target/release/pr-reminder (CARGO_TARGET_DIR honoured).

Only loopback is used; the run ends by itself (at most --deadline seconds).
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402  (fake chat server, signing, the binary)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "cloud", "pullrequest_created.json")
SECRET = "storm-secret"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prs", type=int, default=20)
    ap.add_argument("--storm", type=float, default=20.0, help="seconds of 429 answers")
    ap.add_argument("--retry-after", type=int, default=2)
    ap.add_argument("--rate", type=int, default=30, help="room_rate_per_minute")
    ap.add_argument("--deadline", type=float, default=240.0)
    args = ap.parse_args()
    binary = bl.release_binary(build=False)

    fake = bl.FakeChat(lambda t: 429 if t < args.storm else None,
                       retry_after=args.retry_after,
                       refusal_headers=lambda: {
                           "X-Ratelimit-Reset": str(int(time.time()) + args.retry_after)})
    started = fake.started
    tmp = tempfile.mkdtemp(prefix="storm-")
    config = os.path.join(tmp, "config.toml")
    with open(config, "w") as f:
        f.write(
            f'[[rooms]]\nname = "storm"\n'
            f'hipchat_url = "{fake.url("/v2/room/1/notification?auth_token=t0k3n")}"\n'
            f"[notify]\ncoalesce_seconds = 0.2\nretry_min_ms = 500\nretry_max_seconds = 10\n"
            f"max_attempts = 100\nroom_rate_per_minute = {args.rate}\n"
        )
    env = dict(os.environ, PR_REMINDER_LISTEN="127.0.0.1:0", PR_REMINDER_WEBHOOK_SECRET=SECRET,
               PR_REMINDER_DATABASE=os.path.join(tmp, "storm.db"), RUST_LOG="info")
    server = subprocess.Popen([binary, "--config", config, "--log-format", "json", "serve"],
                              env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        port = None
        for line in server.stderr:
            m = re.search(r'"port":(\d+)', line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            sys.exit("server did not start")
        threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()

        template = json.load(open(FIXTURE))
        for n in range(1, args.prs + 1):
            template["pullrequest"]["id"] = n
            template["pullrequest"]["title"] = f"Storm PR {n}"
            body = json.dumps(template).encode()
            sig = bl.sign(SECRET, body)
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/webhooks/bitbucket", data=body, method="POST",
                headers={"Content-Type": "application/json", "X-Event-Key": "pullrequest:created",
                         "X-Request-UUID": f"storm-{n}", "X-Hub-Signature": sig})
            urllib.request.urlopen(req).read()

        while time.monotonic() - started < args.deadline:
            if len(fake.delivered()) >= args.prs:
                break
            time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        fake.close()

    log = [(t, s, json.loads(b or b"{}")) for t, _path, s, b in fake.log]
    ok = [(t, b) for t, s, b in log if s == 204]
    limited = [t for t, s, _ in log if s == 429]
    titles = [re.search(r"Storm PR (\d+)", b.get("message", "")).group(1) for _, b in ok]
    window = max((sum(1 for u, _ in ok if t <= u < t + 60) for t, _ in ok), default=0)
    print(f"fake HipChat: 429 for the first {args.storm:.0f} s (Retry-After {args.retry_after}), then 204")
    print(f"room_rate_per_minute = {args.rate}, {args.prs} PRs opened at t≈0")
    print(f"requests: {len(log)} total, {len(limited)} answered 429, {len(ok)} delivered")
    for minute in range(int(max((t for t, _, _ in log), default=0)) // 60 + 1):
        sent = sum(1 for t, _, _ in log if minute * 60 <= t < (minute + 1) * 60)
        rl = sum(1 for t in limited if minute * 60 <= t < (minute + 1) * 60)
        print(f"  minute {minute}: {sent} requests ({rl} were 429)")
    if len(limited) > 1:
        gaps = [b - a for a, b in zip(limited, limited[1:])]
        print(f"gap between 429-answered requests: min {min(gaps):.2f} s, median {sorted(gaps)[len(gaps)//2]:.2f} s")
    print(f"most deliveries in any 60 s window: {window} (limit {args.rate})")
    if ok:
        print(f"first delivery at {ok[0][0]:.1f} s, last at {ok[-1][0]:.1f} s")
    dupes = len(titles) - len(set(titles))
    missing = args.prs - len(set(titles))
    print(f"distinct PRs delivered: {len(set(titles))}/{args.prs}, duplicates: {dupes}")
    verdict = missing == 0 and window <= args.rate
    print("RESULT:", "OK" if verdict else "FAILED")
    sys.exit(0 if verdict else 1)


if __name__ == "__main__":
    main()
