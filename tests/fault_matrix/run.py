#!/usr/bin/env python3
"""The fault matrix of issue 13, run against an independent implementation of the Admin API.

Runs the orgwarden binary (as a child process, as an operator would) through each fault against
`admin_api.py` (Python, written from the contract, sharing no code with orgwarden's simulator)
and a minimal SMTP server written here, and checks, for every scenario: no panic (exit 101 or
"panicked" anywhere), no secret in any output, the outcome the issue asks for. Prints one line per
scenario and a JSON summary; exits 1 if any scenario failed.

Usage: run.py [--bin PATH] [--only NAME]   (PATH defaults to target/debug/orgwarden)
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ADMIN_KEY = "sk-ant-admin01-FAULTMATRIX-0123456789abcdef-SECRET"
SMTP_PASSWORD = "smtp-pass-FAULTMATRIX-SECRET"
SECRETS = [ADMIN_KEY, SMTP_PASSWORD, "FAULTMATRIX-0123456789abcdef"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """admin_api.py as a child process on a free loopback port."""

    def __init__(self, *extra):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "admin_api.py"), str(self.port), ADMIN_KEY, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"admin_api.py did not start: {line}")
        self.url = f"http://127.0.0.1:{self.port}"

    def faults(self, **values):
        req = urllib.request.Request(f"{self.url}/_control", data=json.dumps(values).encode(),
                                     method="POST")
        urllib.request.urlopen(req, timeout=5).read()

    def stats(self):
        return json.loads(urllib.request.urlopen(f"{self.url}/_stats", timeout=5).read())

    def close(self):
        self.proc.kill()
        self.proc.wait()


class Smtp:
    """A minimal SMTP receiver (RFC 5321 happy path, no TLS, loopback only)."""

    def __init__(self, port):
        self.messages = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 fault-matrix ESMTP\r\n")
                data = None
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    if data is not None:
                        if line == b".\r\n":
                            outer.messages.append(b"".join(data))
                            data = None
                            self.wfile.write(b"250 queued\r\n")
                        else:
                            data.append(line)
                        continue
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        self.wfile.write(b"250-fault-matrix\r\n250-AUTH PLAIN\r\n250 SIZE 100000000\r\n")
                    elif verb == b"AUTH":
                        if len(line.split()) < 3:
                            self.wfile.write(b"334 \r\n")
                            self.rfile.readline()
                        self.wfile.write(b"235 accepted\r\n")
                    elif verb == b"DATA":
                        data = []
                        self.wfile.write(b"354 go on\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 ok\r\n")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Case:
    """One scenario's temp directory, config and checks."""

    def __init__(self, binary, api_url, smtp_port=None, extra=""):
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="ow-fault-"))
        self.db = self.dir / "orgwarden.db"
        self.config = self.dir / "config.toml"
        self.outputs = []
        self.problems = []
        mail = ""
        if smtp_port:
            mail = (f'[mail]\nto = ["security@example.com"]\nfrom = "orgwarden <ow@example.com>"\n'
                    f'host = "127.0.0.1"\nport = {smtp_port}\ntls = "none"\ntimeout = "3s"\n'
                    f'username = "ow"\n')
        self.config.write_text(
            f'[api]\nbase_url = "{api_url}"\nrequest_timeout = "5s"\ntotal_deadline = "60s"\n'
            f'max_retries = 4\npage_size = 100\n\n[store]\npath = "{self.db}"\n\n[usage]\nenabled = false\n\n'
            f'[report]\nout_dir = "{self.dir}/reports"\n\n{mail}\n{extra}\n')

    def run(self, *args, timeout=120, env=None, expect=None, prefix=()):
        full_env = dict(os.environ, ANTHROPIC_ADMIN_KEY=ADMIN_KEY,
                        ORGWARDEN_SMTP_PASSWORD=SMTP_PASSWORD, NO_COLOR="1")
        full_env.pop("RUST_LOG", None)
        full_env.update(env or {})
        proc = subprocess.run([*prefix, str(self.binary), "--config", str(self.config), *args],
                              capture_output=True, text=True, timeout=timeout, env=full_env)
        self.observe(f"orgwarden {' '.join(args)}", proc.returncode, proc.stdout + proc.stderr)
        if expect is not None and proc.returncode not in (expect if isinstance(expect, tuple) else (expect,)):
            self.problems.append(
                f"`{' '.join(args)}` exited {proc.returncode}, expected {expect}: "
                f"{(proc.stdout + proc.stderr).strip()[-400:]}")
        return proc

    def observe(self, what, code, text):
        """The checks every output gets: no panic, no secret."""
        self.outputs.append(text)
        if code == 101 or "panicked" in text:
            self.problems.append(f"{what}: PANIC (exit {code}): {text.strip()[-400:]}")
        for secret in SECRETS:
            if secret in text:
                self.problems.append(f"{what}: a secret appeared in its output")

    def check(self, ok, message):
        if not ok:
            self.problems.append(message)

    def db_has_no_secret(self):
        for path in [self.db, Path(f"{self.db}-wal")]:
            if path.exists():
                data = path.read_bytes()
                for secret in SECRETS:
                    if secret.encode() in data:
                        self.problems.append(f"{path.name}: a secret is stored in the database")

    def count(self, sql):
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return con.execute(sql).fetchone()[0]
        finally:
            con.close()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def members_shown(case):
    out = case.run("show", "members", "--format", "json", expect=0).stdout
    return len(json.loads(out)) if out.strip().startswith("[") else len(out.splitlines())


# --- scenarios: each takes (binary, api) and returns the Case it ran -------------------------

def baseline(binary, api):
    case = Case(binary, api.url)
    api.faults()
    case.run("snapshot", expect=0)
    case.check(members_shown(case) == 300, "the snapshot does not hold the 300 members served")
    case.run("audit", "--format", "json", expect=0)
    case.run("status", expect=(0, 1))
    case.db_has_no_secret()
    return case


def rate_limit_storm(binary, api):
    case = Case(binary, api.url)
    # The case (a server allowing 3 requests a second, orgwarden asking with 4 in flight
    # and no fixed pacing), after a 3 s burst of 529s; then a server allowing only one a second,
    # so that calls queue behind each other's pauses for longer than max_retries would allow.
    api.faults(rate_limit_rps=3, overloaded_secs=3)
    before = api.stats()
    case.run("snapshot", expect=0, timeout=180)
    api.faults(rate_limit_rps=1)
    case.run("snapshot", expect=0, timeout=180)
    after = api.stats()
    case.check(after["429"] > before["429"] and after["529"] > before["529"],
               f"no 429 and 529 were served: {before} -> {after}")
    api.faults()
    case.check(members_shown(case) == 300, "a snapshot under a rate limit is incomplete")
    history = case.run("history", expect=0).stdout
    case.check("failed" not in history, f"a run failed under the rate limit: {history[-300:]}")
    return case


def broken_bodies(binary, api):
    case = Case(binary, api.url)
    api.faults(broken_bodies=True)
    case.run("snapshot", expect=0, timeout=180)
    case.check(api.stats()["broken"] > 0, "no broken body was served")
    case.check(members_shown(case) == 300, "a snapshot after broken 2xx bodies is incomplete")
    return case


def multibyte_error_body(binary, api):
    case = Case(binary, api.url, extra="")
    api.faults(multibyte_500=True)
    proc = case.run("snapshot", expect=1, timeout=180)
    case.check("500" in proc.stderr, "the error does not name the status 500")
    api.faults()
    history = case.run("history", expect=(0, 1)).stdout
    case.check("failed" in history, f"the failed run is not recorded as failed: {history[-300:]}")
    return case


def revoked_key(binary, api):
    case = Case(binary, api.url)
    api.faults(revoked=True)
    proc = case.run("snapshot", expect=1)
    case.check("refused the key" in proc.stderr,
               f"a 401 is not worded as a refused key: {proc.stderr.strip()[-300:]}")
    proc = case.run("check-config", "--online", expect=(1, 78))
    case.check("refused the key" in proc.stdout + proc.stderr, "check-config --online: 401 wording")
    return case


def hostile_strings(binary, api):
    case = Case(binary, api.hostile_url)
    api.hostile.faults()
    case.run("snapshot", expect=0)
    for args in (["show", "members"], ["show", "workspaces"], ["audit", "--no-record"]):
        case.run(*args, expect=0)
    api.hostile.faults(hostile_error=True)
    proc = case.run("snapshot", expect=1)
    lines = proc.stderr.splitlines()
    case.check(not any(line.startswith("ERROR orgwarden: forged") for line in lines),
               "an API error message forged a log line")
    case.check("\x1b" not in proc.stderr and "\u202e" not in proc.stderr and "\x07" not in proc.stderr,
               "control or bidi characters from the API reached stderr")
    api.hostile.faults()
    return case


def sigkill_mid_snapshot(binary, api):
    case = Case(binary, api.url)
    api.faults()
    case.run("snapshot", expect=0)
    complete_before = members_shown(case)
    api.faults(slow_keys_page=30)
    env = dict(os.environ, ANTHROPIC_ADMIN_KEY=ADMIN_KEY, NO_COLOR="1")
    proc = subprocess.Popen([str(binary), "--config", str(case.config), "snapshot"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    time.sleep(3)  # the snapshot is waiting on the slow second page of keys
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    case.observe("killed snapshot", 0, out)
    api.faults()
    history = case.run("history", expect=(0, 1)).stdout
    case.check("abandoned" in history, f"a killed run does not show as abandoned: {history[-400:]}")
    status = case.run("status").stdout
    case.check("running" not in status.split("daemon")[0].lower() or "abandoned" in status,
               f"status still shows the killed run as running: {status[-400:]}")
    case.check(members_shown(case) == complete_before,
               "the killed snapshot changed what the latest complete snapshot shows")
    case.run("snapshot", expect=0)
    return case


def other_org(binary, api):
    case = Case(binary, api.url)
    api.faults()
    case.run("snapshot", expect=0)
    api.faults(other_org=True)
    proc = case.run("snapshot", expect=(1, 78))
    case.check("--accept-new-org" in proc.stderr, "a snapshot of another organization is not refused")
    case.run("snapshot", "--accept-new-org", expect=0)
    api.faults()
    return case


def black_hole(binary, api):
    case = Case(binary, api.url)
    api.faults(black_hole=True)
    started = time.monotonic()
    proc = case.run("check-config", "--online", timeout=60)
    took = time.monotonic() - started
    case.check(proc.returncode != 0, "check-config --online succeeded against a silent server")
    case.check(took < 20, f"check-config --online took {took:.0f}s against a silent server (10 s deadline)")
    api.faults()
    return case


def secret_in_broken_config(binary, api):
    case = Case(binary, api.url)
    text = case.config.read_text()
    case.config.write_text(text.replace(
        "[api]\n", f'[api]\nadmin_key = "{ADMIN_KEY}" oops = \n'))
    for args in (["check-config"], ["snapshot"], ["status"]):
        proc = case.run(*args)
        case.check(proc.returncode == 78, f"`{' '.join(args)}` on a broken config exited {proc.returncode}, not 78")
        case.check("line 2" in proc.stderr and "redacted" in proc.stderr,
                   f"the error does not point at the broken line (redacted): {proc.stderr[-300:]}")
    return case


def sighup_broken_config(binary, api):
    case = Case(binary, api.url, extra='[schedule]\naudit = "0 0 0 1 1 *"\nrun_on_start = false\n')
    env = dict(os.environ, ANTHROPIC_ADMIN_KEY=ADMIN_KEY, NO_COLOR="1")
    log = case.dir / "daemon.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([str(binary), "--config", str(case.config), "run"],
                                stdout=sink, stderr=subprocess.STDOUT, env=env)
        time.sleep(2)
        good = case.config.read_text()
        case.config.write_text(good.replace("[api]\n", f'[api]\nadmin_key = "{ADMIN_KEY}" oops = \n'))
        proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        case.check(proc.poll() is None, "the daemon exited on a SIGHUP with a broken config")
        case.config.write_text(good)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
            case.problems.append("the daemon did not stop within 30 s of SIGTERM")
    text = log.read_text()
    case.observe("daemon log", code, text)
    case.check(code == 0, f"the daemon exited {code} on SIGTERM")
    case.check("line 2" in text and "redacted" in text,
               "the daemon's log does not point at the broken line (redacted) on reload")
    return case


def corrupt_database(binary, api):
    case = Case(binary, api.url)
    api.faults()
    case.run("snapshot", expect=0)
    data = bytearray(case.db.read_bytes())
    # Keep the header, scribble over the first table's pages.
    for i in range(4096 + 100, min(len(data), 4096 * 6)):
        data[i] = 0xA5
    case.db.write_bytes(bytes(data))
    digest = hashlib.sha256(case.db.read_bytes()).hexdigest()
    proc = case.run("status")
    case.check(proc.returncode != 0, "status reports a corrupt database as healthy")
    case.check("corrupt" in (proc.stdout + proc.stderr).lower(), "status does not say the database is corrupt")
    case.run("snapshot")
    case.check(hashlib.sha256(case.db.read_bytes()).hexdigest() == digest,
               "a corrupt database was written to")
    return case


def read_only_database(binary, api):
    case = Case(binary, api.url)
    api.faults()
    case.run("snapshot", expect=0)
    case.run("snapshot", expect=0)
    # File modes do not stop root: as root, the readers run as nobody, for whom neither the
    # database nor its directory can be written.
    prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups") \
        if os.geteuid() == 0 else ()
    os.chmod(case.config, 0o644)
    os.chmod(case.db, 0o444)
    os.chmod(case.dir, 0o555)
    try:
        for args in (["status"], ["history"], ["show", "members"], ["diff"]):
            proc = case.run(*args, prefix=prefix)
            readable = proc.returncode == 0 or (args == ["status"] and proc.returncode == 1
                                                and "last complete snapshot" in proc.stdout.lower())
            case.check(readable, f"`{' '.join(args)}` fails on a database it cannot write "
                                 f"(exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        proc = case.run("snapshot", prefix=prefix)
        case.check(proc.returncode != 0, "a snapshot into a database that cannot be written succeeded")
    finally:
        os.chmod(case.dir, 0o755)
        os.chmod(case.db, 0o644)
    return case


def smtp_down(binary, api):
    port = free_port()
    case = Case(binary, api.url, smtp_port=port)
    api.faults()
    case.run("snapshot", expect=0)
    case.run("audit", expect=0)
    proc = case.run("report", "--send", timeout=120)
    case.check(proc.returncode != 0, "report --send exited 0 with the mail server down")
    pending = case.run("outbox").stdout
    case.check("pending" in pending.lower(), f"the report is not kept pending in the outbox: {pending[-300:]}")
    proc = case.run("outbox", "--retry")
    case.check(proc.returncode != 0, "outbox --retry exited 0 with mail still pending")
    smtp = Smtp(port)
    try:
        case.run("outbox", "--retry", expect=0)
        case.check(len(smtp.messages) == 1, f"{len(smtp.messages)} messages arrived after the retry, not 1")
        for message in smtp.messages:
            for secret in SECRETS:
                case.check(secret.encode() not in message, "a secret is in the sent email")
    finally:
        smtp.close()
    case.db_has_no_secret()
    return case


def demo_dir_not_empty(binary, api):
    case = Case(binary, api.url)
    target = case.dir / "mine"
    target.mkdir()
    precious = target / "orgwarden.db"
    precious.write_bytes(b"my own data")
    proc = case.run("demo", "--dir", str(target), timeout=60)
    case.check(proc.returncode != 0, "demo ran in a directory it did not create")
    case.check(precious.read_bytes() == b"my own data", "demo touched an existing file")
    case.check(sorted(p.name for p in target.iterdir()) == ["orgwarden.db"], "demo added files")
    return case


def never_firing_cron(binary, api):
    case = Case(binary, api.url, extra='[schedule]\naudit = "0 0 0 30 2 *"\n')
    proc = case.run("check-config", expect=78)
    case.check("schedule.audit" in proc.stdout + proc.stderr,
               f"the error does not name schedule.audit: {(proc.stdout + proc.stderr)[-300:]}")
    return case


def missing_key(binary, api):
    case = Case(binary, api.url)
    for args in (["snapshot"], ["check-config"], ["check-config", "--online"]):
        case.run(*args, env={"ANTHROPIC_ADMIN_KEY": ""}, expect=78)
    case.check(not case.db.exists(), "a snapshot without a key created a database")
    return case


def readers_beside_the_daemon(binary, api):
    case = Case(binary, api.url, extra='[schedule]\naudit = "0 0 0 1 1 *"\nrun_on_start = false\n')
    api.faults()
    case.run("snapshot", expect=0)
    env = dict(os.environ, ANTHROPIC_ADMIN_KEY=ADMIN_KEY, NO_COLOR="1")
    daemon = subprocess.Popen([str(binary), "--config", str(case.config), "run"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        time.sleep(2)
        status = case.run("status").stdout
        case.check("running" in status.lower(), f"status does not say the daemon runs: {status[-300:]}")
        case.run("audit", "--no-record", expect=0)
        case.run("cleanup", expect=0)
        case.run("report", "--out", str(case.dir / "preview"), expect=0)
        proc = case.run("audit")
        case.check(proc.returncode != 0 and "daemon" in proc.stderr,
                   f"a writer beside the daemon is not told about the daemon: {proc.stderr[-300:]}")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    return case


def terminal_hygiene(binary, api):
    """On a terminal (a pty here): hostile names lose their bidi overrides and control
    characters, colour only without NO_COLOR; into a file: no colour codes at all."""
    import pty
    case = Case(binary, api.hostile_url)
    api.hostile.faults()
    case.run("snapshot", expect=0)
    case.run("audit", expect=0)
    env = dict(os.environ, ANTHROPIC_ADMIN_KEY=ADMIN_KEY, TERM="xterm-256color")
    env.pop("NO_COLOR", None)

    def on_terminal(args, extra_env):
        leader, follower = pty.openpty()
        proc = subprocess.Popen([str(binary), "--config", str(case.config), *args],
                                stdout=follower, stderr=follower, env=dict(env, **extra_env))
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        code = proc.wait(timeout=60)
        text = b"".join(chunks).decode("utf-8", "replace")
        case.observe(f"{' '.join(args)} on a terminal", code, text)
        return text

    for args in (["show", "members"], ["show", "workspaces"], ["audit", "--no-record"]):
        text = on_terminal(args, {})
        if args == ["show", "members"]:
            case.check("Mallory" in text, "the hostile names are not shown (the checks prove nothing)")
        case.check("\u202e" not in text, f"`{' '.join(args)}` passed a bidi override to the terminal")
        case.check("\x1b[31m" not in text and "\x1b[2J" not in text,
                   f"`{' '.join(args)}` passed a name's escape sequence to the terminal")
        for line in text.splitlines():
            case.check(not line.startswith("ERROR forged"),
                       f"a member's name forged a line on the terminal (`{' '.join(args)}`)")
    # Colour is in the log lines (stderr): a snapshot logs what it read.
    # (A progress display may move the cursor on a terminal; colour is SGR: ESC [ ... m.)
    colour = re.compile(r"\x1b\[[0-9;]*m")
    # On a terminal a snapshot shows progress, not log lines: broken bodies make it log retries.
    api.hostile.faults(broken_bodies=True)
    text = on_terminal(["snapshot"], {})
    case.check(colour.search(text), "no colour on a terminal without NO_COLOR "
                                    "(so the NO_COLOR check below would prove nothing)")
    api.hostile.faults(broken_bodies=True)
    text = on_terminal(["snapshot"], {"NO_COLOR": "1"})
    case.check(not colour.search(text), "colour codes on a terminal with NO_COLOR set")
    api.hostile.faults(broken_bodies=True)
    with open(case.dir / "snapshot.log", "w") as sink:
        subprocess.run([str(binary), "--config", str(case.config), "snapshot"], stdout=sink,
                       stderr=subprocess.STDOUT, env=env, timeout=60)
    logged = (case.dir / "snapshot.log").read_text()
    case.check("retrying" in logged and "\x1b" not in logged, "colour codes went into a file")
    api.hostile.faults()
    return case


SCENARIOS = [
    baseline, rate_limit_storm, broken_bodies, multibyte_error_body, revoked_key, hostile_strings,
    sigkill_mid_snapshot, other_org, black_hole, secret_in_broken_config, sighup_broken_config,
    corrupt_database, read_only_database, smtp_down, demo_dir_not_empty, never_firing_cron,
    missing_key, readers_beside_the_daemon, terminal_hygiene,
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=str(HERE.parent.parent / "target" / "debug" / "orgwarden"))
    parser.add_argument("--only")
    args = parser.parse_args()
    binary = Path(args.bin).resolve()
    api = Api()
    api.hostile = Api("--hostile")
    api.hostile_url = api.hostile.url
    results = []
    try:
        for scenario in SCENARIOS:
            if args.only and scenario.__name__ != args.only:
                continue
            started = time.monotonic()
            try:
                case = scenario(binary, api)
                problems = case.problems
                case.cleanup()
            except Exception as error:  # a harness failure is a failed scenario, not a crash
                problems = [f"harness: {type(error).__name__}: {error}"]
            took = time.monotonic() - started
            status = "ok" if not problems else "FAIL"
            print(f"{status:4} {scenario.__name__} ({took:.1f}s)", flush=True)
            for problem in problems:
                print(f"       - {problem}", flush=True)
            results.append({"scenario": scenario.__name__, "ok": not problems,
                            "secs": round(took, 1), "problems": problems})
    finally:
        api.close()
        api.hostile.close()
    failed = [r for r in results if not r["ok"]]
    print(json.dumps({"scenarios": len(results), "failed": len(failed)}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
