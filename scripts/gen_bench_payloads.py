#!/usr/bin/env python3
"""Generates signed Bitbucket Cloud `pullrequest:*` deliveries for scripts/bench-ingest.sh.

Output: one line per request, `event_key<TAB>sha256=<hex><TAB><body>`. The body is compact JSON
(JSON escapes every tab and newline inside strings, so a line never splits) and the signature is
HMAC-SHA256 over exactly those UTF-8 bytes, as Bitbucket computes `X-Hub-Signature`.

The shape is copied from a real delivery captured from Bitbucket Cloud (the ble-testsuite
fixture) rather than from Atlassian's documentation templates, because the real payloads are the
ones whose size and nesting the server has to parse: avatars, rendered HTML, a dozen links per
pull request. When the fixture is not there (a checkout without shared/), an embedded template with
the same fields is used instead.

Each pull request goes through created -> updated -> approved, and `updated_on` only grows from
one line to the next, so a single pass over the file is a plausible history. wrk cycles over the
file many times; later passes replay older snapshots, which the server must (and does) refuse to
let overwrite newer state, so they exercise that path too.

Standard library only, deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import hmac
import json
import os
import random
import sys
import uuid

DEFAULT_FIXTURE = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "..", "shared", "fixtures", "bitbucket", "cloud", "ble-testsuite",
    "2023-05-16-123305-webhook-site.json",
))

# The pull request of the real delivery, reduced to one of each kind of thing; used only when
# the fixture file is missing. Field names and nesting follow Bitbucket Cloud's wire format.
_U = {
    "display_name": "Template Author",
    "links": {
        "self": {"href": "https://api.bitbucket.org/2.0/users/%7B00000000-0000-4000-8000-000000000001%7D"},
        "avatar": {"href": "https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/000000000000000000000001/00000000-0000-4000-8000-00000000000a/128"},
        "html": {"href": "https://bitbucket.org/%7B00000000-0000-4000-8000-000000000001%7D/"},
    },
    "type": "user",
    "uuid": "{00000000-0000-4000-8000-000000000001}",
    "account_id": "000000000000000000000001",
    "nickname": "tauthor",
}
_REPO_LINKS = {
    "self": {"href": "https://api.bitbucket.org/2.0/repositories/tmplws/tmplrepo"},
    "html": {"href": "https://bitbucket.org/tmplws/tmplrepo"},
    "avatar": {"href": "https://bytebucket.org/ravatar/%7B00000000-0000-4000-8000-0000000000aa%7D?ts=default"},
}
_PR_LINK_NAMES = ["self", "html", "commits", "approve", "request-changes", "diff", "diffstat",
                  "comments", "activity", "merge", "decline", "statuses"]
EMBEDDED_TEMPLATE = {
    "repository": {
        "type": "repository", "full_name": "tmplws/tmplrepo", "links": _REPO_LINKS,
        "name": "tmplrepo", "scm": "git", "website": None,
        "owner": {"display_name": "tmplws", "links": {}, "type": "team",
                  "uuid": "{00000000-0000-4000-8000-0000000000bb}", "username": "tmplws"},
        "workspace": {"type": "workspace", "uuid": "{00000000-0000-4000-8000-0000000000bb}",
                      "name": "tmplws", "slug": "tmplws", "links": {}},
        "is_private": True,
        "project": {"type": "project", "key": "PROJ", "uuid": "{00000000-0000-4000-8000-0000000000cc}",
                    "name": "Project", "links": {}},
        "uuid": "{00000000-0000-4000-8000-0000000000aa}",
    },
    "actor": _U,
    "pullrequest": {
        "comment_count": 0, "task_count": 0, "type": "pullrequest", "id": 1, "title": "t",
        "description": "", "rendered": {
            "title": {"type": "rendered", "raw": "t", "markup": "markdown", "html": "<p>t</p>"},
            "description": {"type": "rendered", "raw": "", "markup": "markdown", "html": ""},
        },
        "state": "OPEN", "merge_commit": None, "close_source_branch": True, "closed_by": None,
        "author": _U, "reason": "",
        "created_on": "2023-05-16T10:24:10.476586+00:00",
        "updated_on": "2023-05-16T10:33:04.281505+00:00",
        "destination": {
            "branch": {"name": "main"},
            "commit": {"type": "commit", "hash": "000000000000", "links": {}},
            "repository": {"type": "repository", "full_name": "tmplws/tmplrepo", "links": _REPO_LINKS,
                           "name": "tmplrepo", "uuid": "{00000000-0000-4000-8000-0000000000aa}"},
        },
        "source": {
            "branch": {"name": "feature"},
            "commit": {"type": "commit", "hash": "000000000000", "links": {}},
            "repository": {"type": "repository", "full_name": "tmplws/tmplrepo", "links": _REPO_LINKS,
                           "name": "tmplrepo", "uuid": "{00000000-0000-4000-8000-0000000000aa}"},
        },
        "reviewers": [],
        "participants": [],
        "links": {name: {"href": ""} for name in _PR_LINK_NAMES},
        "summary": {"type": "rendered", "raw": "", "markup": "markdown", "html": ""},
    },
}

FIRST = ["Ana", "Bilal", "Chen", "Dagny", "Emeka", "Farah", "Goran", "Hana", "Ines", "Jonas",
         "Kemal", "Lucia", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tomoko",
         "Uma", "Viktor", "Wen", "Yusuf", "Zofia"]
LAST = ["Alvarez", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat", "Ito",
        "Jansen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva"]
WORKSPACES = ["acme", "acme-platform", "acme-mobile", "acme-data", "acme-labs"]
NOUNS = ["billing", "gateway", "auth", "search", "ledger", "notifier", "scheduler", "catalog",
         "inventory", "reports", "ingest", "firmware", "checkout", "profile", "metrics", "export"]
SUFFIX = ["service", "api", "worker", "web", "cli", "lib", "sdk", "infra"]
VERBS = ["Fix", "Add", "Refactor", "Update", "Remove", "Document", "Speed up", "Harden", "Rename",
         "Split", "Retry", "Cache", "Validate", "Log"]
THINGS = ["the retry loop in the uploader", "pagination of the list endpoint", "the nightly export job",
          "timezone handling in reports", "the OAuth token refresh", "flaky integration tests",
          "the Dockerfile base image", "error messages for invalid input", "the CSV importer",
          "webhook signature checks", "the migration for the orders table", "metrics labels",
          "connection pool sizing", "the feature flag for the new checkout", "locale fallbacks"]


def ts(instant: dt.datetime) -> str:
    # Bitbucket Cloud's own format: microseconds and an explicit +00:00.
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def hexhash(rng: random.Random, n: int = 12) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def inner(braced: str) -> str:
    return braced.strip("{}")


def rebrand(obj, replacements):
    """Copies a JSON value with every string occurrence of old ids swapped for new ones.

    Works on the serialised text so that ids buried in links (`%7B<uuid>%7D`, `/<workspace>/<slug>/`)
    change together with the fields that hold them, whatever the template nests.
    """
    text = json.dumps(obj, ensure_ascii=False)
    for old, new in replacements:
        if old:
            text = text.replace(old, new)
    return json.loads(text)


class Generator:
    def __init__(self, template: dict, secret: bytes, seed: int, repos: int, target: int):
        self.t = template
        self.secret = secret
        self.rng = random.Random(seed)
        self.target = target
        pr = template["pullrequest"]
        self.t_repo_full = template["repository"]["full_name"]
        self.t_ws, self.t_slug = self.t_repo_full.split("/", 1)
        self.t_repo_uuid = inner(template["repository"]["uuid"])
        self.t_author = pr["author"]
        self.t_pr_id = pr["id"]
        self.t_src_hash = pr["source"]["commit"]["hash"]
        self.t_dst_hash = pr["destination"]["commit"]["hash"]
        self.t_participant = (pr.get("participants") or [{
            "type": "participant", "user": self.t_author, "role": "REVIEWER", "approved": False,
            "state": None, "participated_on": None}])[0]
        self.t_approval = template.get("approval")

        uid = lambda: str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.users = []
        for i in range(60):
            first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
            self.users.append({
                "uuid": uid(),
                "account_id": "%x" % self.rng.getrandbits(96),
                "display_name": f"{first} {last}",
                "nickname": f"{first.lower()}.{last.lower()}{i}",
            })
        self.repos = []
        for i in range(repos):
            ws = WORKSPACES[i % len(WORKSPACES)]
            slug = f"{NOUNS[i % len(NOUNS)]}-{SUFFIX[(i // len(NOUNS)) % len(SUFFIX)]}-{i:03d}"
            self.repos.append({"ws": ws, "slug": slug, "uuid": uid()})

    def repo_swaps(self, repo):
        return [
            (f"{self.t_ws}/{self.t_slug}", f"{repo['ws']}/{repo['slug']}"),
            (self.t_repo_uuid, repo["uuid"]),
            (f"/{self.t_ws}/", f"/{repo['ws']}/"),
            (f"/{self.t_ws}\"", f"/{repo['ws']}\""),
            (f'"{self.t_ws}"', f'"{repo["ws"]}"'),
            (f'"{self.t_slug}"', f'"{repo["slug"]}"'),
        ]

    def user_obj(self, u):
        t = self.t_author
        return rebrand(t, [
            (inner(t["uuid"]), u["uuid"]),
            (t.get("account_id") or "", u["account_id"]),
            (t.get("display_name") or "", u["display_name"]),
            (t.get("nickname") or "", u["nickname"]),
        ])

    def participant(self, u, role, approved, when):
        p = copy.deepcopy(self.t_participant)
        p.update({"user": self.user_obj(u), "role": role, "approved": approved,
                  "state": "approved" if approved else None, "participated_on": when})
        return p

    def description(self, pr_rng: random.Random, lines: int):
        bullets = [f"{pr_rng.choice(VERBS)} {pr_rng.choice(THINGS)}" for _ in range(lines)]
        raw = "Changes in this pull request:\n\n" + "\n".join(f"* {b}" for b in bullets) + "\n"
        html = "<p>Changes in this pull request:</p>\n<ul>\n" + "".join(
            f"<li>{b}</li>\n" for b in bullets) + "</ul>"
        return raw, html

    def body(self, pr_meta, stage, updated: dt.datetime):
        repo, number, author, reviewers, created, title, branch, hashes = pr_meta
        event = ["pullrequest:created", "pullrequest:updated", "pullrequest:approved"][stage]
        src_hash = hashes[min(stage, 1)]  # "updated" pushed a new commit
        swaps = self.repo_swaps(repo) + [
            (f"pullrequests/{self.t_pr_id}/", f"pullrequests/{number}/"),
            (f"pullrequests/{self.t_pr_id}\"", f"pullrequests/{number}\""),
            (f"pull-requests/{self.t_pr_id}\"", f"pull-requests/{number}\""),
            (f"from_pullrequest_id={self.t_pr_id}&", f"from_pullrequest_id={number}&"),
            (self.t_src_hash, src_hash),
            (self.t_dst_hash, hashes[2]),
        ]
        doc = rebrand({k: v for k, v in self.t.items() if k != "approval"}, swaps)
        pr = doc["pullrequest"]
        when = ts(updated)
        approver = reviewers[0]
        actor = author if stage < 2 else approver
        doc["actor"] = self.user_obj(actor)
        doc["repository"]["website"] = None  # the captured one names a real company's site
        pr.update({
            "id": number, "title": title, "state": "OPEN",
            "author": self.user_obj(author),
            "created_on": ts(created), "updated_on": when,
            "comment_count": stage, "task_count": 0,
            "reviewers": [self.user_obj(u) for u in reviewers],
        })
        pr["source"]["branch"]["name"] = branch
        pr["rendered"]["title"].update({"raw": title, "html": f"<p>{title}</p>"})
        participants = []
        if stage == 2:
            # As in real deliveries: reviewers who have not acted appear only in `reviewers`.
            participants.append(self.participant(approver, "REVIEWER", True, when))
            participants.append(self.participant(author, "PARTICIPANT", False, ts(created)))
            if self.t_approval is not None:
                approval = copy.deepcopy(self.t_approval)
                approval.update({"date": when, "user": self.user_obj(approver)})
                doc["approval"] = approval
        pr["participants"] = participants

        # Fill the description until the body reaches the target size: the description is
        # repeated (description, rendered, summary), so size grows ~5x per added bullet.
        pr_rng = random.Random(f"{repo['slug']}#{number}")
        lines, encoded = 1, b""
        while True:
            raw, html = self.description(random.Random(pr_rng.random()), lines)
            pr["description"] = raw
            pr["rendered"]["description"].update({"raw": raw, "html": html})
            pr["summary"] = {"type": "rendered", "raw": raw, "markup": "markdown", "html": html}
            candidate = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
            if encoded and len(candidate) > self.target:
                break  # keep the last body at or under the target
            encoded = candidate
            if len(candidate) >= self.target:
                break
            lines += 1
        signature = "sha256=" + hmac.new(self.secret, encoded, hashlib.sha256).hexdigest()
        return event, signature, encoded

    def generate(self, count: int):
        n_prs = (count + 2) // 3
        start = dt.datetime(2024, 3, 4, 8, 0, 0, tzinfo=dt.timezone.utc)
        prs = []
        for i in range(n_prs):
            repo = self.repos[i % len(self.repos)]
            number = 1 + i // len(self.repos) + (i * 13) % 40  # distinct per repo, not 1..n
            author, *reviewers = self.rng.sample(self.users, 1 + self.rng.choice([1, 1, 2]))
            title = f"{self.rng.choice(VERBS)} {self.rng.choice(THINGS)}"
            branch = f"feature/{repo['slug'].split('-')[0]}-{number}-{self.rng.getrandbits(16):04x}"
            hashes = (hexhash(self.rng), hexhash(self.rng), hexhash(self.rng))
            prs.append([repo, number, author, reviewers, None, title, branch, hashes])
        # PR after PR, then stage after stage: neighbouring requests touch different rows.
        for k in range(count):
            stage, i = divmod(k, n_prs)
            updated = start + dt.timedelta(seconds=17 * k, microseconds=(k * 7919) % 1_000_000)
            if stage == 0:
                prs[i][4] = updated
            yield self.body(tuple(prs[i]), stage, updated)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="file to write (event<TAB>signature<TAB>body)")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--repos", type=int, default=200)
    ap.add_argument("--target-bytes", type=int, default=8192)
    ap.add_argument("--template", default=DEFAULT_FIXTURE,
                    help="a captured pullrequest:* delivery to copy the shape of")
    ap.add_argument("--seed", type=int, default=20240304)
    ap.add_argument("--secret-env", default="PR_REMINDER_WEBHOOK_SECRET",
                    help="environment variable holding the webhook secret (kept off the command line)")
    args = ap.parse_args()

    secret = os.environ.get(args.secret_env, "")
    if not secret:
        print(f"gen_bench_payloads: ${args.secret_env} is empty", file=sys.stderr)
        return 2
    if os.path.exists(args.template):
        with open(args.template, encoding="utf-8") as f:
            template, source = json.load(f), args.template
    else:
        template, source = EMBEDDED_TEMPLATE, "embedded template"
    gen = Generator(template, secret.encode(), args.seed, args.repos, args.target_bytes)

    sizes, events = [], {}
    with open(args.out, "wb") as out:
        for event, signature, body in gen.generate(args.count):
            assert b"\n" not in body and b"\t" not in body
            out.write(event.encode() + b"\t" + signature.encode() + b"\t" + body + b"\n")
            sizes.append(len(body))
            events[event] = events.get(event, 0) + 1
    sizes.sort()
    print(f"payloads: {len(sizes)} bodies from {source}; {len(gen.repos)} repositories; "
          f"body bytes min/median/max {sizes[0]}/{sizes[len(sizes) // 2]}/{sizes[-1]}; "
          + ", ".join(f"{k.split(':')[1]}={v}" for k, v in sorted(events.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
