#!/usr/bin/env python3
"""The plain sequential client issue 13 compares orgwarden with: one request at a time, no pacing,
every object of the organization parsed and stored in SQLite (Python's standard library only: a
keep-alive http.client connection, json and sqlite3, as a short script would be written).

Usage: sequential_client.py BASE_URL ADMIN_KEY DB_PATH   (prints {"requests": N, "rows": N})
"""

import http.client
import json
import sqlite3
import sys
import urllib.parse


def main():
    base, key, db_path = sys.argv[1], sys.argv[2], sys.argv[3]
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    requests = 0

    def get(path, **query):
        nonlocal requests
        conn.request("GET", f"{path}?{urllib.parse.urlencode(query)}", headers=headers)
        response = conn.getresponse()
        body = response.read()
        requests += 1
        if response.status != 200:
            raise SystemExit(f"{path}: HTTP {response.status}: {body[:200]!r}")
        return json.loads(body)

    def walk(path, **query):
        after = None
        while True:
            params = dict(query, limit=1000)
            if after:
                params["after_id"] = after
            page = get(path, **params)
            yield from page["data"]
            if not page["has_more"] or not page["last_id"]:
                return
            after = page["last_id"]

    db = sqlite3.connect(db_path)
    db.executescript("""
        CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, email TEXT, name TEXT, role TEXT,
                                          added_at TEXT);
        CREATE TABLE IF NOT EXISTS invites (id TEXT PRIMARY KEY, email TEXT, role TEXT,
                                            status TEXT, invited_at TEXT, expires_at TEXT);
        CREATE TABLE IF NOT EXISTS workspaces (id TEXT PRIMARY KEY, name TEXT, created_at TEXT,
                                               archived_at TEXT);
        CREATE TABLE IF NOT EXISTS workspace_members (workspace_id TEXT, user_id TEXT, role TEXT,
                                                      PRIMARY KEY (workspace_id, user_id));
        CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, name TEXT, workspace_id TEXT,
                                             status TEXT, created_at TEXT, created_by TEXT);
    """)
    org = get("/v1/organizations/me")
    rows = 1 if org.get("id") else 0
    for u in walk("/v1/organizations/users"):
        db.execute("INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?, ?)",
                   (u["id"], u["email"], u["name"], u["role"], u["added_at"]))
        rows += 1
    for i in walk("/v1/organizations/invites"):
        db.execute("INSERT OR REPLACE INTO invites VALUES (?, ?, ?, ?, ?, ?)",
                   (i["id"], i["email"], i["role"], i["status"], i["invited_at"], i["expires_at"]))
        rows += 1
    workspaces = list(walk("/v1/organizations/workspaces", include_archived="true"))
    for w in workspaces:
        db.execute("INSERT OR REPLACE INTO workspaces VALUES (?, ?, ?, ?)",
                   (w["id"], w["name"], w["created_at"], w["archived_at"]))
        rows += 1
        for m in walk(f"/v1/organizations/workspaces/{w['id']}/members"):
            db.execute("INSERT OR REPLACE INTO workspace_members VALUES (?, ?, ?)",
                       (m["workspace_id"], m["user_id"], m["workspace_role"]))
            rows += 1
    for k in walk("/v1/organizations/api_keys"):
        creator = (k.get("created_by") or {}).get("id")
        db.execute("INSERT OR REPLACE INTO api_keys VALUES (?, ?, ?, ?, ?, ?)",
                   (k["id"], k["name"], k["workspace_id"], k["status"], k["created_at"], creator))
        rows += 1
    db.commit()
    db.close()
    print(json.dumps({"requests": requests, "rows": rows}))


if __name__ == "__main__":
    main()
