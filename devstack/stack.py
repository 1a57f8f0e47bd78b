"""The local stack in one command: database, queue, app server, seeded users, tokens.

    python -m devstack.stack            # what `make dev` runs

Starts SecantusDB (a MongoDB-wire server; skipped when MONGODB_URI points elsewhere),
moto's S3 server (object storage, its bucket created with CORS for the page; skipped
when S3_BUCKET names a real bucket), the QStash-compatible dev server and the app
server as child processes, seeds the
users `admin`, `partner` and `partner2`, prints the URL and a sign-in URL and token per
user, and writes the same to `.local/stack.json`. Ctrl-C stops every process it started.
Tests use the `Stack` class directly, on free ports and a scratch folder.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

from lib.auth import issue_token
from lib.models import Role
from lib.settings import DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY, DEV_QSTASH_TOKEN

ROOT = Path(__file__).resolve().parents[1]
SEED_USERS = {"admin": Role.ADMIN, "partner": Role.PARTNER, "partner2": Role.PARTNER}
SWEEP_INTERVAL_SECONDS = 30
LOCAL_BUCKET = "ai-answers-local"
# moto accepts any credentials; these keep a developer's own AWS keys away from it.
LOCAL_AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local-secret"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


@dataclass
class Stack:
    """The local stack's processes. `start()` brings them up, `stop()` takes them down."""

    data_dir: Path = ROOT / ".local"
    app_port: int = 3000
    qstash_port: int = 8080
    db_port: int = 27018
    s3_port: int = 0  # 0: a free port
    mongodb_uri: str | None = None  # an external MongoDB; SecantusDB is not started
    storage: bool = True  # object storage: moto's server (or the real bucket named by S3_BUCKET)
    db_name: str = "ai_answers"
    app_env: dict[str, str] = field(default_factory=dict)
    qstash_args: list[str] = field(default_factory=list)
    echo_logs: bool = False
    sweep_interval: float = SWEEP_INTERVAL_SECONDS
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        self._owns_db = self.mongodb_uri is None
        if self.mongodb_uri is None:
            self.mongodb_uri = f"mongodb://127.0.0.1:{self.db_port}/?directConnection=true"
        self.s3_port = self.s3_port or free_port()
        # A real bucket named in the environment is used as it is; otherwise moto's server.
        self._owns_s3 = self.storage and not os.environ.get("S3_BUCKET")
        self.jwt_secret = self._secret()
        self.cron_secret = secrets.token_urlsafe(24)
        self._stop_sweep = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def qstash_url(self) -> str:
        return f"http://127.0.0.1:{self.qstash_port}"

    @property
    def s3_url(self) -> str | None:
        return f"http://127.0.0.1:{self.s3_port}" if self._owns_s3 else os.environ.get("S3_ENDPOINT_URL")

    def storage_env(self) -> dict[str, str]:
        """The S3_* settings of the app server (none: no object storage)."""
        if not self.storage:
            return {}
        if not self._owns_s3:
            return {k: v for k, v in os.environ.items() if k.startswith(("S3_", "AWS_"))}
        return {"S3_BUCKET": LOCAL_BUCKET, "S3_ENDPOINT_URL": self.s3_url or "", "S3_REGION": "us-east-1",
                **LOCAL_AWS_CREDENTIALS}

    def _secret(self) -> str:
        path = self.data_dir / "jwt_secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    def app_environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QSTASH_", "MONGODB_", "S3_", "AWS_"))}
        env.update(
            MONGODB_URI=self.mongodb_uri or "",
            MONGODB_DB=self.db_name,
            JWT_SECRET=self.jwt_secret,
            PUBLIC_BASE_URL=self.base_url,
            QSTASH_URL=self.qstash_url,
            QSTASH_TOKEN=DEV_QSTASH_TOKEN,
            QSTASH_CURRENT_SIGNING_KEY=DEV_QSTASH_CURRENT_SIGNING_KEY,
            QSTASH_NEXT_SIGNING_KEY=DEV_QSTASH_NEXT_SIGNING_KEY,
            CRON_SECRET=self.cron_secret,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.storage_env())
        env.update(self.app_env)
        return env

    # --- processes ----------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log: IO[bytes] | int
        log = subprocess.PIPE if self.echo_logs else open(self.data_dir / "logs" / f"{name}.log", "ab")
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        if self.echo_logs:
            threading.Thread(target=_echo, args=(name, process), daemon=True).start()
        self.processes[name] = process
        return process

    def start_db(self) -> None:
        if not self._owns_db:
            return
        storage = self.data_dir / "db"
        self._spawn("db", [str(Path(sys.executable).with_name("secantusd-py")), "--host", "127.0.0.1",
                           "--port", str(self.db_port), "--storage-path", str(storage), "--log-level", "WARNING"])
        wait_until(self._db_ready, 60, "SecantusDB")

    def _db_ready(self) -> bool:
        import pymongo  # dev tooling only; the service reaches the database through lib.store

        with pymongo.MongoClient(self.mongodb_uri, serverSelectionTimeoutMS=500) as client:
            client[self.db_name]["_ready"].replace_one({"_id": 1}, {"_id": 1}, upsert=True)
        return True

    def start_storage(self) -> None:
        """moto's S3 server, with the bucket the app uses; the page's origins may post the upload form."""
        if not self._owns_s3:
            return
        self._spawn("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)])
        wait_until(lambda: requests.get(f"{self.s3_url}/moto-api/", timeout=1).ok, 30, "moto's S3 server")
        from lib.storage import Storage

        credentials = {"aws_access_key_id": LOCAL_AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                       "aws_secret_access_key": LOCAL_AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
        Storage(LOCAL_BUCKET, region="us-east-1", endpoint_url=self.s3_url, credentials=credentials).create_bucket(
            cors_origins=[self.base_url, f"http://localhost:{self.app_port}"])

    def stop_storage(self) -> None:
        """Stop moto's server (its files are in memory: they go with it)."""
        self._signal("s3", signal.SIGTERM)

    def start_qstash(self) -> None:
        self._spawn("qstash", [sys.executable, "-m", "devstack.qstash_server", "--port", str(self.qstash_port),
                               *self.qstash_args])
        wait_until(lambda: requests.get(f"{self.qstash_url}/__dev/stats", timeout=1).ok, 30, "QStash dev server")

    def start_app(self) -> None:
        self._spawn("app", [sys.executable, "-m", "devstack.appserver", "--port", str(self.app_port)],
                    env=self.app_environment())
        wait_until(lambda: requests.get(f"{self.base_url}/api/batch/list", timeout=1).status_code == 401, 30,
                   "app server")

    def kill_app(self) -> None:
        """SIGKILL the app server, as a crash would."""
        self._signal("app", signal.SIGKILL)

    def stop_db(self) -> None:
        self._signal("db", signal.SIGTERM, wait=30)

    def _signal(self, name: str, sig: int, wait: float = 10) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def start(self) -> Stack:
        self.start_db()
        self.seed()
        self.start_storage()
        self.start_qstash()
        self.start_app()
        if self.sweep_interval > 0:
            threading.Thread(target=self._sweep_loop, daemon=True).start()
        self.write_info()
        return self

    def stop(self) -> None:
        self._stop_sweep.set()
        for name in ("app", "qstash", "s3", "db"):
            self._signal(name, signal.SIGTERM, wait=30)

    def _sweep_loop(self) -> None:
        """Play Vercel's cron: call the sweep endpoint now and then."""
        while not self._stop_sweep.wait(self.sweep_interval):
            try:
                requests.get(f"{self.base_url}/api/batch/sweep", timeout=10,
                             headers={"Authorization": f"Bearer {self.cron_secret}"})
            except requests.RequestException:
                pass  # the app may be restarting

    # --- users and the info file --------------------------------------------------------

    def seed(self) -> None:
        from lib.store.client import Store, get_client
        from lib.store.users import UserStore

        users = UserStore(Store(get_client(self.mongodb_uri or ""), self.db_name))
        for name, role in SEED_USERS.items():
            user = users.upsert(f"{name}@example.gc.ca", role)
            self.user_ids[name] = user.id
            self.tokens[name] = issue_token(user.id, self.jwt_secret, ttl_seconds=7 * 24 * 3600, email=user.email)

    def signin_url(self, name: str) -> str:
        # The token rides in the fragment: browsers never send it to a server.
        return f"{self.base_url}/#token={self.tokens[name]}"

    def info(self) -> dict[str, object]:
        return {
            "baseUrl": self.base_url,
            "mongodbUri": self.mongodb_uri,
            "mongodbDb": self.db_name,
            "qstashUrl": self.qstash_url,
            "s3Url": self.s3_url if self.storage else None,
            "s3Bucket": self.storage_env().get("S3_BUCKET"),
            "tokens": self.tokens,
            "userIds": self.user_ids,
            "signinUrls": {name: self.signin_url(name) for name in self.tokens},
            "cronSecret": self.cron_secret,
            "pids": {name: p.pid for name, p in self.processes.items()},
        }

    def write_info(self) -> None:
        path = self.data_dir / "stack.json"
        path.write_text(json.dumps(self.info(), indent=2))
        path.chmod(0o600)


def _echo(name: str, process: subprocess.Popen) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(f"[{name}] {line.decode('utf-8', 'replace')}")
        sys.stdout.flush()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the stack as Ctrl-C does


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the local stack.")
    parser.add_argument("--app-port", type=int, default=int(os.environ.get("APP_PORT", 3000)))
    parser.add_argument("--qstash-port", type=int, default=int(os.environ.get("QSTASH_PORT", 8080)))
    parser.add_argument("--db-port", type=int, default=int(os.environ.get("DB_PORT", 27018)))
    parser.add_argument("--s3-port", type=int, default=int(os.environ.get("S3_PORT", 9000)))
    parser.add_argument("--quiet", action="store_true", help="write process logs to .local/logs only")
    args = parser.parse_args(argv)
    stack = Stack(app_port=args.app_port, qstash_port=args.qstash_port, db_port=args.db_port, s3_port=args.s3_port,
                  mongodb_uri=os.environ.get("MONGODB_URI"), echo_logs=not args.quiet)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background, where SIGINT is ignored
    try:
        stack.start()
        print(f"\nLocal stack ready at {stack.base_url}  (details in .local/stack.json)\n", flush=True)
        for name in SEED_USERS:
            print(f"  {name:9} sign in: {stack.signin_url(name)}")
        print(f"\n  curl -s -X POST {stack.base_url}/api/chat/message \\\n"
              f"    -H 'Authorization: Bearer {stack.tokens['partner']}' -H 'Content-Type: application/json' \\\n"
              '    -d \'{"message":"How do I renew my passport?","lang":"en"}\'\n')
        print("Press Ctrl-C to stop.", flush=True)
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
        print("a process of the stack exited; stopping", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
