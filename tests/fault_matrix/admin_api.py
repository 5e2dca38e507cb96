#!/usr/bin/env python3
"""An independent implementation of the Anthropic Admin API's read endpoints, for the fault matrix.

Written from ../shared/admin-api/README.md (the contract), not from orgwarden's own Rust
simulator, so that orgwarden is checked against a second reading of the contract: Python's
standard library only, one thread per connection, list envelopes with `first_id`/`last_id`/
`has_more` cursors in creation order, error envelopes with `request_id`.

Faults are switched at run time by `POST /_control` with a JSON object (see `Faults`), so one
server serves a whole matrix of scenarios. `GET /_stats` returns what was served.

Usage: admin_api.py PORT KEY [--members N] [--keys N] [--workspaces N]
"""

import argparse
import json
import random
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ORG_ID = "6f2b7c1e-3d0a-4c55-9a3e-1b2c3d4e5f60"
OTHER_ORG_ID = "0a0b0c0d-1111-2222-3333-444455556666"
BASE_TIME = datetime(2026, 6, 1, tzinfo=timezone.utc)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Org:
    """A deterministic organization: members, invites, workspaces, memberships and keys."""

    def __init__(self, members, keys, workspaces, hostile=False):
        rnd = random.Random(1234)
        self.users = []
        for i in range(members):
            role = "admin" if i < 2 else rnd.choice(["user", "developer", "billing", "claude_code_user"])
            domain = "departed.example" if i % 17 == 5 else "example.com"
            name = f"Person {i}"
            if hostile and i % 7 == 3:
                # Bidi override, ANSI colour, a newline and a NUL: names are the organization's data.
                name = f"Mallory \u202e{i}gnp.exe\x1b[31mRED\x1b[0m\nERROR forged log line\x00"
            self.users.append({
                "id": f"user_{i:06d}", "type": "user", "email": f"person{i}@{domain}",
                "name": name, "role": role,
                "added_at": iso(BASE_TIME + timedelta(hours=i)),
            })
        self.invites = []
        for i in range(max(1, members // 10)):
            invited = BASE_TIME + timedelta(days=i % 40)
            self.invites.append({
                "id": f"invite_{i:06d}", "type": "invite",
                "email": f"invitee{i}@{'departed.example' if i % 5 == 0 else 'example.com'}",
                "role": "user", "invited_at": iso(invited),
                "expires_at": iso(invited + timedelta(days=21)),
                "status": "pending", "accepted_at": None, "rbac_group_ids": [],
            })
        self.workspaces = []
        self.members = {}
        for w in range(workspaces):
            wid = f"wrkspc_{w:04d}"
            name = f"Workspace {w}"
            if hostile and w == 1:
                name = "\u202eevil\x1b[2J"
            self.workspaces.append({
                "id": wid, "type": "workspace", "name": name,
                "display_color": "#6C5BB9", "created_at": iso(BASE_TIME),
                "archived_at": None,
                "data_residency": {"allowed_inference_geos": "unrestricted",
                                   "default_inference_geo": "global", "workspace_geo": "us"},
                "compartment_id": f"cmp-{w}", "external_key_id": None, "tags": {},
                # An unknown field: must not break a snapshot.
                "future_field": {"nested": [1, 2, 3]},
            })
            self.members[wid] = [
                {"type": "workspace_member", "user_id": u["id"], "workspace_id": wid,
                 "workspace_role": rnd.choice(["workspace_user", "workspace_developer",
                                               "workspace_admin",
                                               # An enum value from the future.
                                               "workspace_future_role"])}
                for j, u in enumerate(self.users) if (j + w) % 3 == 0
            ]
        self.keys = []
        for k in range(keys):
            owner = self.users[k % len(self.users)]
            wid = self.workspaces[k % len(self.workspaces)]["id"] if self.workspaces else None
            status = ["active", "active", "inactive", "archived", "expired", "suspended_future"][k % 6]
            self.keys.append({
                "id": f"apikey_{k:06d}", "type": "api_key", "name": f"key {k}",
                "workspace_id": wid, "created_at": iso(BASE_TIME + timedelta(minutes=k)),
                "created_by": {"id": owner["id"], "type": "user"},
                "partial_key_hint": f"sk-ant-api03-{k:04d}...abcd", "status": status,
                "expires_at": None, "principal": None,
                "scope": {"type": "workspace", "workspace_id": wid or "wrkspc_default"},
            })


class Faults:
    """What the server does wrong, switched by POST /_control (unknown keys are rejected)."""

    FIELDS = {
        # A server-side rate limit: a token bucket of this many requests per second (burst of
        # the same size); a request without a token gets 429 rate_limit_error with retry-after
        # (whole seconds, rounded up) saying when the next token comes. 0: no limit.
        "rate_limit_rps": 0,
        # 529 overloaded_error to every request for this many seconds from the switch.
        "overloaded_secs": 0.0,
        # A 200 whose body is cut in the middle, once for each distinct list request.
        "broken_bodies": False,
        # 401 authentication_error on every request.
        "revoked": False,
        # 500 with a non-JSON body of multi-byte characters (a byte cut would split one).
        "multibyte_500": False,
        # 400 whose error message carries newlines and control characters.
        "hostile_error": False,
        # Seconds to wait before answering the second page of the API keys.
        "slow_keys_page": 0.0,
        # /me answers with another organization.
        "other_org": False,
        # Accept the request and never answer.
        "black_hole": False,
    }

    def __init__(self):
        self.values = dict(self.FIELDS)
        self.seen_broken = set()
        self.since = time.monotonic()
        self.tokens = None
        self.refilled = time.monotonic()

    def take_token(self):
        """None when a request may go, else the seconds until the next token."""
        rps = self.values["rate_limit_rps"]
        if not rps:
            return None
        now = time.monotonic()
        if self.tokens is None:
            self.tokens = float(rps)
        self.tokens = min(float(rps), self.tokens + (now - self.refilled) * rps)
        self.refilled = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / rps


class State:
    def __init__(self, key, org):
        self.key = key
        self.org = org
        self.faults = Faults()
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "429": 0, "529": 0, "broken": 0, "500": 0, "401": 0}
        self.request_seq = 0


def envelope(items, id_key, query):
    """One page of a list in creation order, with the contract's cursor semantics."""
    try:
        limit = int(query.get("limit", ["20"])[0])
    except ValueError:
        return None, "limit must be an integer"
    if not 1 <= limit <= 1000:
        return None, "limit must be between 1 and 1000"
    after = query.get("after_id", [None])[0]
    before = query.get("before_id", [None])[0]
    if after and before:
        return None, "after_id and before_id are mutually exclusive"
    ids = [item[id_key] for item in items]
    if after:
        if after not in ids:
            return None, f"unknown after_id {after}"
        start = ids.index(after) + 1
        page = items[start:start + limit]
        has_more = start + limit < len(items)
    elif before:
        if before not in ids:
            return None, f"unknown before_id {before}"
        end = ids.index(before)
        start = max(0, end - limit)
        page = items[start:end]
        has_more = start > 0
    else:
        page = items[:limit]
        has_more = limit < len(items)
    return {
        "data": page,
        "has_more": has_more,
        "first_id": page[0][id_key] if page else None,
        "last_id": page[-1][id_key] if page else None,
    }, None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "indep-admin-api/1"

    def log_message(self, *_):
        pass

    @property
    def state(self):
        return self.server.state

    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", self.request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_raw(self, status, data, content_type="text/plain; charset=utf-8"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, kind, message, headers=None):
        self.send_json(status, {"type": "error", "error": {"type": kind, "message": message},
                                "request_id": self.request_id}, headers)

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if path == "/_control":
            values = json.loads(body or b"{}")
            unknown = set(values) - set(Faults.FIELDS)
            if unknown:
                self.send_raw(400, f"unknown fault {sorted(unknown)}".encode())
                return
            with self.state.lock:
                self.state.faults = Faults()
                self.state.faults.values.update(values)
            self.send_raw(200, b"ok")
            return
        self.request_id = "req_post"
        self.error(400, "invalid_request_error", "this implementation serves reads only")

    def do_GET(self):
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, urllib.parse.parse_qs(split.query)
        if path == "/_stats":
            with self.state.lock:
                self.send_raw(200, json.dumps(self.state.stats).encode(), "application/json")
            return
        with self.state.lock:
            self.state.stats["requests"] += 1
            self.state.request_seq += 1
            self.request_id = f"req_{self.state.request_seq:08d}"
            faults = self.state.faults.values
            broken_seen = self.state.faults.seen_broken

        if faults["black_hole"]:
            time.sleep(3600)
            return
        if self.headers.get("x-api-key") != self.state.key or faults["revoked"]:
            with self.state.lock:
                self.state.stats["401"] += 1
            self.error(401, "authentication_error", "invalid x-api-key")
            return
        if not self.headers.get("anthropic-version"):
            self.error(400, "invalid_request_error", "anthropic-version: header is required")
            return
        with self.state.lock:
            fault_state = self.state.faults
            if time.monotonic() - fault_state.since < faults["overloaded_secs"]:
                self.state.stats["529"] += 1
                storm, wait = "529", None
            else:
                wait = fault_state.take_token()
                storm = "429" if wait is not None else None
                if storm:
                    self.state.stats["429"] += 1
        if storm == "429":
            self.error(429, "rate_limit_error", "Rate limited",
                       {"retry-after": str(max(1, int(-(-wait // 1))))})
            return
        if storm == "529":
            self.error(529, "overloaded_error", "Overloaded")
            return
        if faults["multibyte_500"]:
            with self.state.lock:
                self.state.stats["500"] += 1
            # 'é' is two bytes and '€' three: byte 200 and byte 500 fall inside a character.
            self.send_raw(500, ("x" + "é€" * 400).encode())
            return
        if faults["hostile_error"]:
            self.error(400, "invalid_request_error",
                       "bad request\nERROR orgwarden: forged line\r\x1b[31m\u202eevil\x07")
            return

        org = self.state.org
        if path == "/v1/organizations/me":
            org_id = OTHER_ORG_ID if faults["other_org"] else ORG_ID
            self.send_json(200, {"id": org_id, "type": "organization", "name": "Indep Org"})
            return
        lists = {
            "/v1/organizations/users": (org.users, "id"),
            "/v1/organizations/invites": (org.invites, "id"),
            "/v1/organizations/workspaces": (org.workspaces, "id"),
            "/v1/organizations/api_keys": (org.keys, "id"),
        }
        if path in lists:
            items, id_key = lists[path]
        elif path.startswith("/v1/organizations/workspaces/") and path.endswith("/members"):
            wid = path.split("/")[4]
            if wid not in org.members:
                self.error(404, "not_found_error", "The requested resource could not be found.")
                return
            items, id_key = org.members[wid], "user_id"
        else:
            self.error(404, "not_found_error", "The requested resource could not be found.")
            return
        body, problem = envelope(items, id_key, query)
        if problem:
            self.error(400, "invalid_request_error", problem)
            return
        if path == "/v1/organizations/api_keys" and query.get("after_id") and faults["slow_keys_page"]:
            time.sleep(faults["slow_keys_page"])
        data = json.dumps(body).encode()
        if faults["broken_bodies"]:
            with self.state.lock:
                first = self.path not in broken_seen
                broken_seen.add(self.path)
                if first:
                    self.state.stats["broken"] += 1
            if first:
                cut = data[: len(data) // 2]
                self.send_raw(200, cut, "application/json")
                return
        self.send_raw(200, data, "application/json")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that hangs up mid-answer (a killed or failed orgwarden) is part of the game."""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("key")
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--keys", type=int, default=900)
    parser.add_argument("--workspaces", type=int, default=6)
    parser.add_argument("--hostile", action="store_true")
    args = parser.parse_args()
    org = Org(args.members, args.keys, args.workspaces, hostile=args.hostile)
    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State(args.key, org)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
