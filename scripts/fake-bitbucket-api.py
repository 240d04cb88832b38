#!/usr/bin/env python3
"""A fake Bitbucket REST API for scripts/bench-reconcile.sh (Python stdlib only, loopback only).

Serves REPOS repositories (`bench/repo-000` ...; Data Center: project `BENCH`) with PRS open pull
requests each, every answer delayed by DELAY_MS, in the shapes pr-reminder reads:

Cloud (base `http://127.0.0.1:PORT/2.0`):
  GET /2.0/repositories/bench/{slug}/pullrequests?state=OPEN&pagelen=50&...   (`next` when more)
  GET /2.0/repositories/bench/{slug}/commit/{hash}/statuses                   (one SUCCESSFUL)
  GET /2.0/repositories/bench                                                 (the workspace)
Data Center (base `http://127.0.0.1:PORT`):
  GET /rest/api/1.0/projects/BENCH/repos/{slug}/pull-requests?state=OPEN&start=N&limit=M
      (capped at 25 a page, `isLastPage` / `nextPageStart`)
  GET /rest/api/latest/projects/BENCH/repos/{slug}/commits/{hash}/builds      (one SUCCESSFUL)
  GET /rest/api/1.0/projects/BENCH/repos                                      (the project)

`GET /__stats` (not delayed, not counted) answers {"requests": n, "by_kind": {...}, "errors": n}
and `POST /__reset` zeroes the counters. Prints `listening PORT` on stdout once ready.

  fake-bitbucket-api.py --flavour cloud --repos 100 --prs 10 --delay-ms 20
"""

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ARGS = None
LOCK = threading.Lock()
STATS = {"requests": 0, "by_kind": {}, "errors": 0}
DC_PAGE_CAP = 25
CREATED_MS = 1_764_000_000_000  # 2025-11-24, a fixed past time: answers never change


def count(kind):
    with LOCK:
        STATS["requests"] += 1
        STATS["by_kind"][kind] = STATS["by_kind"].get(kind, 0) + 1


def slug(i):
    return f"repo-{i:03d}"


def repo_index(name):
    m = re.fullmatch(r"repo-(\d{3})", name)
    if not m or int(m.group(1)) >= ARGS.repos:
        return None
    return int(m.group(1))


def commit(i, n):
    """40 hex digits, distinct per PR in their first 12 (Cloud lists abbreviate to 12)."""
    return f"{i:06x}{n:06x}" + "ab" * 14


def cloud_pr(i, n):
    reviewers = [
        {
            "user": {"uuid": f"{{reviewer-{k}}}", "display_name": f"Reviewer {k}"},
            "role": "REVIEWER",
            "approved": k == 0 and n % 2 == 0,
            "state": "approved" if k == 0 and n % 2 == 0 else None,
            "participated_on": "2025-11-24T10:00:00+00:00",
        }
        for k in range(2)
    ]
    return {
        "id": n,
        "title": f"Change {n} of {slug(i)}",
        "state": "OPEN",
        "author": {"uuid": f"{{author-{n % 7}}}", "display_name": f"Author {n % 7}"},
        "source": {"branch": {"name": f"feature-{n}"}, "commit": {"hash": commit(i, n)[:12]}},
        "destination": {
            "branch": {"name": "main"},
            "repository": {"full_name": f"bench/{slug(i)}", "uuid": f"{{bench-{slug(i)}}}"},
        },
        "participants": reviewers,
        "created_on": "2025-11-24T09:00:00+00:00",
        "updated_on": "2025-11-24T10:00:00+00:00",
        "links": {"html": {"href": f"https://bitbucket.org/bench/{slug(i)}/pull-requests/{n}"}},
    }


def dc_pr(base, i, n):
    repo = {"id": 1000 + i, "slug": slug(i), "project": {"key": "BENCH"}}
    return {
        "id": n,
        "title": f"Change {n} of {slug(i)}",
        "state": "OPEN",
        "draft": False,
        "createdDate": CREATED_MS,
        "updatedDate": CREATED_MS + 60_000,
        "fromRef": {"displayId": f"feature-{n}", "latestCommit": commit(i, n), "repository": repo},
        "toRef": {
            "displayId": "main",
            "repository": dict(
                repo, links={"self": [{"href": f"{base}/projects/BENCH/repos/{slug(i)}/browse"}]}
            ),
        },
        "author": {
            "user": {"id": 1 + n % 7, "name": f"author{n % 7}", "slug": f"author{n % 7}",
                     "displayName": f"Author {n % 7}"},
            "role": "AUTHOR",
            "status": "UNAPPROVED",
        },
        "reviewers": [
            {
                "user": {"id": 100 + k, "name": f"reviewer{k}", "slug": f"reviewer{k}",
                         "displayName": f"Reviewer {k}"},
                "role": "REVIEWER",
                "status": "APPROVED" if k == 0 and n % 2 == 0 else "UNAPPROVED",
            }
            for k in range(2)
        ],
        "participants": [],
        "links": {"self": [{"href": f"{base}/projects/BENCH/repos/{slug(i)}/pull-requests/{n}"}]},
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Bitbucket
    # Headers and body leave in separate writes; with Nagle on, the body would wait for the
    # client's delayed ACK (40 ms on Linux) and the fake would measure itself, not pr-reminder.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path == "/__reset":
            with LOCK:
                STATS.update(requests=0, by_kind={}, errors=0)
            return self.answer(200, {})
        self.answer(405, {"error": {"message": "method not allowed"}})

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/__stats":
            with LOCK:
                return self.answer(200, STATS)
        time.sleep(ARGS.delay_ms / 1000)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            kind, status, body = self.route(url.path, query)
        except Exception as err:  # a bug in the fake: say so loudly
            kind, status, body = "error", 500, {"error": {"message": repr(err)}}
        count(kind)
        if status != 200:
            with LOCK:
                STATS["errors"] += 1
        self.answer(status, body)

    def route(self, path, q):
        base = f"http://127.0.0.1:{ARGS.port_used}"
        if ARGS.flavour == "cloud":
            m = re.fullmatch(r"/2\.0/repositories/bench/([^/]+)/pullrequests", path)
            if m and repo_index(m.group(1)) is not None:
                i = repo_index(m.group(1))
                pagelen, page = int(q.get("pagelen", "10")), int(q.get("page", "1"))
                if pagelen > 50:
                    return "list", 400, {"error": {"message": "Invalid pagelen"}}
                ids = list(range(1, ARGS.prs + 1))
                chunk = ids[(page - 1) * pagelen: page * pagelen]
                body = {"values": [cloud_pr(i, n) for n in chunk], "pagelen": pagelen,
                        "page": page, "size": len(ids)}
                if page * pagelen < len(ids):
                    body["next"] = (f"{base}/2.0/repositories/bench/{slug(i)}/pullrequests"
                                    f"?state=OPEN&pagelen={pagelen}&page={page + 1}")
                return "list", 200, body
            m = re.fullmatch(r"/2\.0/repositories/bench/([^/]+)/commit/([0-9a-f]+)/statuses", path)
            if m and repo_index(m.group(1)) is not None:
                return "builds", 200, {"values": [{
                    "key": "ci", "state": "SUCCESSFUL", "name": "CI",
                    "url": "https://ci.example/1", "updated_on": "2025-11-24T10:30:00+00:00",
                    "commit": {"hash": m.group(2)}}], "pagelen": 10, "page": 1, "size": 1}
            if path == "/2.0/repositories/bench":
                page = int(q.get("page", "1"))
                pagelen = min(int(q.get("pagelen", "10")), 100)
                idx = list(range(ARGS.repos))[(page - 1) * pagelen: page * pagelen]
                body = {"values": [{"full_name": f"bench/{slug(i)}",
                                    "uuid": f"{{bench-{slug(i)}}}"} for i in idx]}
                if page * pagelen < ARGS.repos:
                    body["next"] = f"{base}/2.0/repositories/bench?pagelen={pagelen}&page={page + 1}"
                return "repositories", 200, body
        else:
            m = re.fullmatch(r"/rest/api/1\.0/projects/BENCH/repos/([^/]+)/pull-requests", path)
            if m and repo_index(m.group(1)) is not None:
                i = repo_index(m.group(1))
                start = int(q.get("start", "0"))
                limit = min(int(q.get("limit", "25")), DC_PAGE_CAP)
                ids = list(range(1, ARGS.prs + 1))
                chunk = ids[start:start + limit]
                last = start + limit >= len(ids)
                body = {"values": [dc_pr(base, i, n) for n in chunk], "size": len(chunk),
                        "start": start, "limit": limit, "isLastPage": last}
                if not last:
                    body["nextPageStart"] = start + limit
                return "list", 200, body
            m = re.fullmatch(
                r"/rest/api/latest/projects/BENCH/repos/([^/]+)/commits/([0-9a-f]+)/builds", path)
            if m and repo_index(m.group(1)) is not None:
                return "builds", 200, {"values": [{
                    "key": "ci", "state": "SUCCESSFUL", "name": "CI", "url": "https://ci/1",
                    "createdDate": CREATED_MS + 120_000, "updatedDate": CREATED_MS + 180_000}],
                    "size": 1, "start": 0, "limit": 25, "isLastPage": True}
            if path == "/rest/api/1.0/projects/BENCH/repos":
                start = int(q.get("start", "0"))
                limit = min(int(q.get("limit", "25")), DC_PAGE_CAP)
                idx = list(range(ARGS.repos))[start:start + limit]
                last = start + limit >= ARGS.repos
                body = {"values": [{"slug": slug(i), "project": {"key": "BENCH"}} for i in idx],
                        "isLastPage": last, "start": start, "limit": limit, "size": len(idx)}
                if not last:
                    body["nextPageStart"] = start + limit
                return "repositories", 200, body
        return "unknown", 404, {"error": {"message": f"no such resource: {path}"}}


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flavour", choices=["cloud", "datacenter"], default="cloud")
    p.add_argument("--repos", type=int, default=100)
    p.add_argument("--prs", type=int, default=10)
    p.add_argument("--delay-ms", type=float, default=20.0)
    p.add_argument("--port", type=int, default=0)
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    ARGS.port_used = server.server_address[1]
    print(f"listening {ARGS.port_used}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
