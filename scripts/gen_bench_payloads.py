#!/usr/bin/env python3
"""Generates signed Bitbucket webhook deliveries for scripts/bench-ingest.sh: Cloud
`pullrequest:*` ones (`--flavour cloud`, the default) or Data Center `pr:*` ones
(`--flavour datacenter`).

Output: one line per request, `event_key<TAB>sha256=<hex><TAB><body>`. The body is compact JSON
(JSON escapes every tab and newline inside strings, so a line never splits) and the signature is
HMAC-SHA256 over exactly those UTF-8 bytes, as Bitbucket computes `X-Hub-Signature` (Cloud and
Data Center alike). The event key tells the flavour apart (`pr:` is Data Center), which is how
bench-ingest.lua picks the request-id header (`X-Request-UUID` or `X-Request-Id`).

The shape is copied from real captured deliveries rather than from Atlassian's documentation
templates, because the real payloads are the ones whose size and nesting the server has to parse:
for Cloud the ble-testsuite capture (avatars, rendered HTML, a dozen links per pull request), for
Data Center the go-playground-webhooks ones (`pr-opened.json`, with `pr-modified.json`,
`pr-reviewer-approved.json` and `pr-reviewer-needs-work.json` beside it for the event-specific
fields). Ids, names, repositories, reviewers and times are varied; the description is filled
until a body reaches --target-bytes. When a fixture is not there (a checkout without shared/), an
embedded template with the same fields is used instead.

Each Cloud pull request goes through created -> updated -> approved, each Data Center one through
opened -> modified -> reviewer approved or needs work, and the time of each delivery (Cloud's
`updated_on`, Data Center's `date`, and `updatedDate` except for a verdict, which does not move
it on a real server) only grows from one line to the next, so a single pass over the file is a
plausible history. wrk cycles over the file many times; later passes replay older snapshots,
which the server must (and does) refuse to let overwrite newer state, so they exercise that path
too.

Standard library only, deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import random
import re
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import sign  # noqa: E402  (X-Hub-Signature, shared with the proof suite)

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
        signature = sign(self.secret, encoded)
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


# --- Bitbucket Data Center ----------------------------------------------------------------------

DC_FIXTURE_DIR = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "..", "shared", "fixtures", "bitbucket", "server", "go-playground-webhooks",
))
DC_DEFAULT_FIXTURE = os.path.join(DC_FIXTURE_DIR, "pr-opened.json")
# Looked up beside the opened template for the fields only those events carry.
DC_SIBLINGS = {"modified": "pr-modified.json", "approved": "pr-reviewer-approved.json",
               "needs_work": "pr-reviewer-needs-work.json"}

# The real pr:opened delivery reduced to one of each kind of thing; used only when the fixture is
# missing. Field names and nesting follow Bitbucket Data Center's wire format.
_DC_SERVER = "https://server.bitbucket.local"
_DC_USER = {
    "name": "tauthor", "emailAddress": "tauthor@example.invalid", "id": 1,
    "displayName": "Template Author", "active": True, "slug": "tauthor", "type": "NORMAL",
    "links": {"self": [{"href": f"{_DC_SERVER}/users/tauthor"}]},
}
_DC_REPO = {
    "slug": "tmplrepo", "id": 1, "name": "tmplrepo", "scmId": "git", "state": "AVAILABLE",
    "statusMessage": "Available", "forkable": True,
    "project": {"key": "TMPL", "id": 1, "name": "Template", "public": False, "type": "NORMAL",
                "links": {"self": [{"href": f"{_DC_SERVER}/projects/TMPL"}]}},
    "public": False,
    "links": {
        "clone": [{"href": "ssh://git@server.bitbucket.local:7999/tmpl/tmplrepo.git", "name": "ssh"},
                  {"href": f"{_DC_SERVER}/scm/tmpl/tmplrepo.git", "name": "http"}],
        "self": [{"href": f"{_DC_SERVER}/projects/TMPL/repos/tmplrepo/browse"}],
    },
}
DC_EMBEDDED_TEMPLATE = {
    "eventKey": "pr:opened", "date": "2019-03-01T10:31:15+0100", "actor": _DC_USER,
    "pullRequest": {
        "id": 1, "version": 0, "title": "t", "description": "", "state": "OPEN", "open": True,
        "closed": False, "createdDate": 1551432675860, "updatedDate": 1551432675860,
        "fromRef": {"id": "refs/heads/feature", "displayId": "feature",
                    "latestCommit": "0" * 40, "repository": _DC_REPO},
        "toRef": {"id": "refs/heads/master", "displayId": "master",
                  "latestCommit": "0" * 40, "repository": _DC_REPO},
        "locked": False,
        "author": {"user": _DC_USER, "role": "AUTHOR", "approved": False, "status": "UNAPPROVED"},
        "reviewers": [],
        "participants": [],
        "links": {"self": [{"href": f"{_DC_SERVER}/projects/TMPL/repos/tmplrepo/pull-requests/1"}]},
    },
}

PROJECTS = ["ACME", "PLAT", "MOB", "DATA", "LABS"]
# A Data Center server's clock as its events show it: an offset without a colon.
DC_ZONE = dt.timezone(dt.timedelta(hours=1))


def dc_date(instant: dt.datetime) -> str:
    return instant.astimezone(DC_ZONE).strftime("%Y-%m-%dT%H:%M:%S%z")  # 2019-03-01T10:34:53+0100


def millis(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


def json_len(value) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


class DataCenterGenerator:
    """Data Center `pr:*` deliveries modelled on a captured pr:opened (and its siblings)."""

    def __init__(self, template: dict, siblings: dict, secret: bytes, seed: int, repos: int,
                 target: int):
        self.t = template
        self.secret = secret
        self.rng = random.Random(seed)
        self.target = target
        pr = template["pullRequest"]
        self.t_user = pr["author"]["user"]
        self.t_author = pr["author"]
        self.t_reviewer = (pr.get("reviewers") or [{
            "user": self.t_user, "role": "REVIEWER", "approved": False, "status": "UNAPPROVED"}])[0]
        self.t_repo = pr["toRef"]["repository"]
        self.t_pr_self = pr["links"]["self"][0]["href"]
        # https://host[:port] of the server the template came from; every link keeps it.
        self.origin = re.match(r"^(https?://[^/]+)", self.t_pr_self).group(1)
        modified, approved, needs_work = (siblings.get(k) or {} for k in
                                          ("modified", "approved", "needs_work"))
        self.t_prev_target = modified.get("previousTarget") or {
            "id": pr["toRef"]["id"], "displayId": pr["toRef"]["displayId"], "type": "BRANCH",
            "latestCommit": pr["toRef"]["latestCommit"],
            "latestChangeset": pr["toRef"]["latestCommit"]}
        self.t_verdict = {
            "approved": approved.get("participant")
            or dict(self.t_reviewer, approved=True, status="APPROVED"),
            "needs_work": needs_work.get("participant")
            or dict(self.t_reviewer, approved=False, status="NEEDS_WORK"),
        }

        self.users = []
        for i in range(60):
            first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
            slug = f"{first.lower()}.{last.lower()}{i}"
            self.users.append({
                "id": 1001 + i * 7 + self.rng.randrange(7),
                "name": slug, "slug": slug, "displayName": f"{first} {last}",
                "emailAddress": f"{first.lower()}.{last.lower()}@acme.example",
            })
        self.repos = []
        for i in range(repos):
            key = PROJECTS[i % len(PROJECTS)]
            slug = f"{NOUNS[i % len(NOUNS)]}-{SUFFIX[(i // len(NOUNS)) % len(SUFFIX)]}-{i:03d}"
            repo = {"id": 101 + 3 * i + self.rng.randrange(3), "slug": slug, "key": key,
                    "project_id": 11 + PROJECTS.index(key)}
            repo["obj"] = self.repo_obj(repo)
            self.repos.append(repo)

    def user_obj(self, u):
        user = copy.deepcopy(self.t_user)
        user.update({"name": u["name"], "emailAddress": u["emailAddress"], "id": u["id"],
                     "displayName": u["displayName"], "slug": u["slug"]})
        user["links"] = {"self": [{"href": f"{self.origin}/users/{u['slug']}"}]}
        return user

    def member(self, template, u, **fields):
        m = copy.deepcopy(template)
        m.update(fields, user=self.user_obj(u))
        return m

    def repo_path(self, repo) -> str:
        return f"{self.origin}/projects/{repo['key']}/repos/{repo['slug']}"

    def repo_obj(self, repo):
        # Repositories in ordinary projects (the template's is a personal one: `~user` key).
        obj = copy.deepcopy(self.t_repo)
        t_key, t_slug = self.t_repo["project"]["key"], self.t_repo["slug"]
        obj.update({"slug": repo["slug"], "id": repo["id"], "name": repo["slug"]})
        project = {"key": repo["key"], "id": repo["project_id"], "name": repo["key"].title(),
                   "public": False, "type": "NORMAL",
                   "links": {"self": [{"href": f"{self.origin}/projects/{repo['key']}"}]}}
        obj["project"] = project
        clone = []
        for link in (self.t_repo.get("links") or {}).get("clone", []):
            href = link["href"].replace(f"/{t_key.lower()}/{t_slug}.git",
                                        f"/{repo['key'].lower()}/{repo['slug']}.git")
            clone.append(dict(link, href=href))
        obj["links"] = {"clone": clone, "self": [{"href": self.repo_path(repo) + "/browse"}]}
        return obj

    HEADING = "Changes in this pull request:\n\n"

    def bullets(self, pr_rng: random.Random):
        while True:
            yield f"* {pr_rng.choice(VERBS)} {pr_rng.choice(THINGS)}\n"

    def body(self, pr_meta, stage, when: dt.datetime):
        (repo, number, author, reviewers, created, modified_at, title, branch, hashes,
         verdict) = pr_meta
        event = ["pr:opened", "pr:modified", f"pr:reviewer:{verdict}"][stage]
        doc = {k: copy.deepcopy(v) for k, v in self.t.items() if k != "pullRequest"}
        pr = copy.deepcopy(self.t["pullRequest"])
        # A verdict does not move updatedDate (real servers): it stays the modification's.
        updated = when if stage < 2 else modified_at
        shown_title = f"WIP: {title}" if stage == 0 else title
        approver = reviewers[0]
        doc.update({"eventKey": event, "date": dc_date(when),
                    "actor": self.user_obj(author if stage < 2 else approver)})
        pr.update({
            "id": number, "version": min(stage, 1), "title": shown_title, "state": "OPEN",
            "open": True, "closed": False,
            "createdDate": millis(created), "updatedDate": millis(updated),
            "author": self.member(self.t_author, author),
            "reviewers": [self.member(self.t_reviewer, u, role="REVIEWER", approved=False,
                                      status="UNAPPROVED") for u in reviewers],
            "participants": [],
            "links": {"self": [{"href": f"{self.repo_path(repo)}/pull-requests/{number}"}]},
        })
        pr["fromRef"].update({"id": f"refs/heads/{branch}", "displayId": branch,
                              "latestCommit": hashes[0], "repository": repo["obj"]})
        pr["toRef"].update({"latestCommit": hashes[1], "repository": repo["obj"]})
        for key in ("previousTitle", "previousDescription", "previousTarget", "participant",
                    "previousStatus", "lastReviewedCommit"):
            doc.pop(key, None)
        if stage == 1:
            doc["previousTitle"] = f"WIP: {title}"
            doc["previousDescription"] = ""
            doc["previousTarget"] = dict(copy.deepcopy(self.t_prev_target),
                                         latestCommit=hashes[1], latestChangeset=hashes[1])
        elif stage == 2:
            status = "APPROVED" if verdict == "approved" else "NEEDS_WORK"
            acting = self.member(self.t_verdict[verdict], approver, role="REVIEWER",
                                 approved=verdict == "approved", status=status)
            if "lastReviewedCommit" in acting:
                acting["lastReviewedCommit"] = hashes[0]
            doc["participant"] = acting
            doc["previousStatus"] = "UNAPPROVED"
            pr["reviewers"][0].update(approved=acting["approved"], status=status)
        doc["pullRequest"] = pr

        # Fill the description until the body reaches the target size. The description is in
        # the body once (twice for pr:modified, as previousDescription: the text before the
        # edit, three bullets shorter); the size is counted from the encoded length of each
        # added bullet rather than by serialising the whole body again for every one.
        pr["description"] = ""
        if stage == 1:
            doc["previousDescription"] = ""
        heading = json_len(self.HEADING) - 2  # without the quotes the empty text had already
        size = json_len(doc) + heading * (2 if stage == 1 else 1)
        bullets = self.bullets(random.Random(f"{repo['key']}/{repo['slug']}#{number}"))
        chosen = []
        while len(chosen) < 10_000:
            bullet = next(bullets)
            cost = json_len(bullet) - 2
            if stage == 1 and len(chosen) >= 3:
                cost += json_len(chosen[-3]) - 2  # the edit added 3 bullets: this one joins before
            if chosen and size + cost > self.target:
                break  # keep the body at or under the target
            chosen.append(bullet)
            size += cost
        pr["description"] = self.HEADING + "".join(chosen)
        if stage == 1:
            doc["previousDescription"] = self.HEADING + "".join(chosen[:max(0, len(chosen) - 3)])
        encoded = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        signature = sign(self.secret, encoded)
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
            hashes = (hexhash(self.rng, 40), hexhash(self.rng, 40))
            verdict = "approved" if self.rng.random() < 0.6 else "needs_work"
            prs.append([repo, number, author, reviewers, None, None, title, branch, hashes,
                        verdict])
        # PR after PR, then stage after stage: neighbouring requests touch different rows.
        for k in range(count):
            stage, i = divmod(k, n_prs)
            # Whole milliseconds: what createdDate/updatedDate carry.
            when = start + dt.timedelta(seconds=17 * k, milliseconds=(k * 7919) % 1000)
            if stage == 0:
                prs[i][4] = when
            if stage <= 1:
                prs[i][5] = when
            yield self.body(tuple(prs[i]), stage, when)


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="file to write (event<TAB>signature<TAB>body)")
    ap.add_argument("--flavour", choices=["cloud", "datacenter"], default="cloud",
                    help="Bitbucket Cloud (pullrequest:*) or Data Center (pr:*) deliveries")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--repos", type=int, default=200)
    ap.add_argument("--target-bytes", type=int, default=8192)
    ap.add_argument("--template", default=None,
                    help="a captured delivery to copy the shape of: Cloud pullrequest:* (default "
                         "the ble-testsuite capture) or Data Center pr:opened (default "
                         "go-playground-webhooks/pr-opened.json; pr-modified.json, "
                         "pr-reviewer-approved.json and pr-reviewer-needs-work.json are read "
                         "from the same folder when there)")
    ap.add_argument("--seed", type=int, default=20240304)
    ap.add_argument("--secret-env", default="PR_REMINDER_WEBHOOK_SECRET",
                    help="environment variable holding the webhook secret (kept off the command line)")
    args = ap.parse_args()

    secret = os.environ.get(args.secret_env, "")
    if not secret:
        print(f"gen_bench_payloads: ${args.secret_env} is empty", file=sys.stderr)
        return 2
    if args.flavour == "cloud":
        path = args.template or DEFAULT_FIXTURE
        if os.path.exists(path):
            template, source = load_json(path), path
        else:
            template, source = EMBEDDED_TEMPLATE, "embedded template"
        gen = Generator(template, secret.encode(), args.seed, args.repos, args.target_bytes)
    else:
        path = args.template or DC_DEFAULT_FIXTURE
        siblings = {}
        if os.path.exists(path):
            template, source = load_json(path), path
            folder = os.path.dirname(path)
            for kind, name in DC_SIBLINGS.items():
                sibling = os.path.join(folder, name)
                if os.path.exists(sibling):
                    siblings[kind] = load_json(sibling)
            if siblings:
                source += " (+ " + ", ".join(DC_SIBLINGS[k] for k in siblings) + ")"
        else:
            template, source = DC_EMBEDDED_TEMPLATE, "embedded Data Center template"
        gen = DataCenterGenerator(template, siblings, secret.encode(), args.seed, args.repos,
                                  args.target_bytes)

    sizes, events = [], {}
    with open(args.out, "wb") as out:
        for event, signature, body in gen.generate(args.count):
            assert b"\n" not in body and b"\t" not in body
            out.write(event.encode() + b"\t" + signature.encode() + b"\t" + body + b"\n")
            sizes.append(len(body))
            events[event] = events.get(event, 0) + 1
    sizes.sort()
    print(f"payloads ({args.flavour}): {len(sizes)} bodies from {source}; "
          f"{len(gen.repos)} repositories; "
          f"body bytes min/median/max {sizes[0]}/{sizes[len(sizes) // 2]}/{sizes[-1]}; "
          + ", ".join(f"{k.split(':', 1)[1]}={v}" for k, v in sorted(events.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
