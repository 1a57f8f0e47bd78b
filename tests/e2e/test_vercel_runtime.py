"""The handlers, unchanged, under the real Vercel Python runtime: `vercel dev --local`.

Install first (scripts/setup --test does): `VENV=.venv bash scripts/install-vercel.sh`
puts vercel@58.10.0 in `.tools/vercel` and uv in the venv. Without them this test fails;
it never skips. Set VERCEL_DEV_DEBUG=1 to run the CLI with --debug (log path printed).

What `vercel dev --local` (CLI 58.10.0, @vercel/python 6.56.2) needs offline, found by
running it here:

- `--local` with no `.vercel/project.json`: no linking, no Vercel account; `--yes` answers
  any prompt; `--listen 127.0.0.1:<port>`. Each run still tries
  `GET https://api.vercel.com/v2/user` (telemetry's user id, even with
  VERCEL_TELEMETRY_DISABLED=1); offline it fails at once, harmlessly.
  NO_UPDATE_NOTIFIER=1 stops the npm update check. The caller's VERCEL_*/NOW_* variables
  (a token, a project id) are dropped so nothing links to a real project.
- HOME must be writable: @vercel/fun unpacks its Python runtime to
  ~/.cache/com.vercel.fun, the CLI keeps its config there. The test uses a scratch HOME,
  so a real user's Vercel login is never read.
- vercel.json's `buildCommand` + `outputDirectory` make `vercel dev` run the UI build
  (`npm --prefix ui ci && npm --prefix ui run build`) before it serves anything: that
  deletes and reinstalls `ui/node_modules` in the shared tree. So the test hands the CLI
  its own config with `--local-config`: the repo's vercel.json minus those keys
  (`functions` and `crons` kept) plus an `env` block. Files outside api/ are then served
  as static files, which the test never asks for.
- The functions' environment: `vercel dev` runs them through @vercel/fun, whose process
  gets only PATH and LANG from the CLI's environment; the rest comes from vercel.json's
  `env`, overridden by a `.env` in the repo root. So the app's variables ride in the
  config's `env`, and the test refuses to run when a root `.env` sets any of them.
- Dependencies: @vercel/python installs a function's packages from the nearest
  pyproject.toml when there is one (walking up from the function's folder), and then
  ignores requirements.txt beside it. The project therefore has no pyproject.toml (tool
  settings live in pytest.ini and ruff.toml): requirements.txt is what Vercel installs,
  and `.python-version` (3.12) tells uv and Vercel which Python to use. It builds per
  function in `.vercel/cache/<entry>_py/` (a copy of the tree): `uv lock`, then `uv sync`
  into `.vercel/python/.venv` there, packages from PyPI, uv cache alongside.
  The uv.lock that `uv lock` leaves in that copy is taken as the user's own on the next
  run (`uv sync --frozen`), so a dependency change would go unseen: the test deletes
  those generated locks before it starts.
- Python: in dev mode @vercel/python asks for `python3`, no version. `uv venv --seed`
  (no --python) picks an interpreter for `.python-version` (3.12) but
  refuses ones inside a virtualenv ("system interpreter required"); finding none it
  downloads a CPython from GitHub (offline: DNS error, HTTP 500). The function process
  then runs `python3` from PATH, which must be the venv's minor version (pydantic-core is
  compiled). So PATH starts with a folder whose `python3`, `python3.12`, `python` link to
  the base interpreter of Python 3.12 (the venv's `sys._base_executable`), then the venv's
  bin (for `uv`); UV_PYTHON_PREFERENCE=only-system forbids downloads (@vercel/python
  forces UV_PYTHON_DOWNLOADS=automatic).
- uv is looked up as `uv` on PATH (then /usr/local/bin/uv, the interpreter's script
  folders, ~/.local/bin/uv; failing all, `pip install --user uv==0.10.11`); it must be
  >= 0.9.25. install-vercel.sh pins 0.13.9.
- `vercel dev` says "Ready" within seconds but builds a function on its first request,
  which waits: here ~16 s with a cold cache, ~10 s warm (the whole module: ~19 s / ~13 s).
- Without a devCommand it deletes `<repo>/.vercel/output` on start. It watches the tree
  and re-reads its config when files change; other engineers' edits are harmless.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devstack.stack import free_port
from lib.auth import issue_token
from lib.models import Role
from lib.store.client import Store, get_client
from lib.store.users import UserStore

pytestmark = pytest.mark.vercel

ROOT = Path(__file__).resolve().parents[2]
VERCEL_VERSION = "58.10.0"
VERCEL_PREFIX = ROOT / ".tools" / "vercel"
VERCEL_BIN = VERCEL_PREFIX / "node_modules" / ".bin" / "vercel"
INSTALL_HINT = "run `VENV=<your venv> bash scripts/install-vercel.sh` (the test command does)"
# The first request builds the function's Python env with uv (packages from PyPI).
STARTUP_TIMEOUT = float(os.environ.get("VERCEL_DEV_TIMEOUT", "300"))
JWT_SECRET = "vercel-runtime-secret-" + "v" * 24
# Keys of vercel.json that make `vercel dev` build the UI first (see the module docstring).
UI_BUILD_KEYS = ("buildCommand", "outputDirectory", "devCommand", "installCommand", "framework")


@dataclass
class VercelDev:
    base_url: str
    token: str
    log_path: Path
    startup_seconds: float

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# --- prerequisites -----------------------------------------------------------------------


def vercel_cli() -> Path:
    package = VERCEL_PREFIX / "node_modules" / "vercel" / "package.json"
    if not VERCEL_BIN.exists() or not package.exists():
        pytest.fail(f"The Vercel CLI is not installed in {VERCEL_PREFIX}: {INSTALL_HINT}.", pytrace=False)
    version = json.loads(package.read_text())["version"]
    if version != VERCEL_VERSION:
        pytest.fail(f"{VERCEL_PREFIX} holds vercel {version}, not {VERCEL_VERSION}: {INSTALL_HINT}.", pytrace=False)
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH; the Vercel CLI needs Node.js.", pytrace=False)
    return VERCEL_BIN


def venv_bin_with_uv() -> Path:
    """The running venv's bin folder, which must hold uv."""
    venv_bin = Path(sys.prefix) / "bin"
    if not (venv_bin / "uv").exists():
        pytest.fail(f"uv is not in {venv_bin}: {INSTALL_HINT}.", pytrace=False)
    return venv_bin


def base_python312() -> Path:
    """A Python 3.12 that is not inside a virtualenv (uv refuses those for `uv venv`)."""
    if sys.version_info[:2] == (3, 12):
        return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    found = shutil.which("python3.12")
    if found is None:
        pytest.fail("Python 3.12 is needed (the Vercel runtime's version) but python3.12 is not on PATH.",
                    pytrace=False)
    out = subprocess.run([found, "-c", "import sys; print(getattr(sys, '_base_executable', sys.executable))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(os.path.realpath(out))


def python_shims(folder: Path, python: Path) -> Path:
    """A folder whose python3, python3.12 and python are the base Python 3.12."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("python3", "python3.12", "python"):
        link = folder / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(python)
    return folder


def check_dotenv(names: list[str]) -> None:
    """A root .env overrides the config's env for the functions; refuse rather than test the wrong thing."""
    dotenv = ROOT / ".env"
    if not dotenv.exists():
        return
    defined = set(re.findall(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", dotenv.read_text(), re.MULTILINE))
    clash = sorted(defined & set(names))
    if clash:
        pytest.fail(f"{dotenv} sets {', '.join(clash)}; `vercel dev` would give those to the functions instead of "
                    "the test's values. Move it aside to run this test.", pytrace=False)


def forget_generated_locks() -> list[Path]:
    """Delete the uv.lock files earlier `vercel dev` runs left in their per-function copies.

    `vercel dev` copies the tree to `.vercel/cache/<entry>_py/` and runs `uv lock` there; on
    the next run it takes that leftover uv.lock for the user's own and installs from it with
    `uv sync --frozen`, so a change to the dependencies would never be seen. A uv.lock of the
    repo's own is copied in again on every build, so nothing real is lost.
    """
    removed = []
    for lock in (ROOT / ".vercel" / "cache").glob("*/uv.lock"):
        lock.unlink()
        removed.append(lock)
    return removed


def dev_config(path: Path, app_env: dict[str, str]) -> Path:
    """The repo's vercel.json without the UI build, with the app's environment."""
    config = json.loads((ROOT / "vercel.json").read_text())
    for key in UI_BUILD_KEYS:
        config.pop(key, None)
    config["env"] = {**config.get("env", {}), **app_env}
    path.write_text(json.dumps(config, indent=2))
    return path


def cli_environment(home: Path, shims: Path, venv_bin: Path, app_env: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VERCEL", "NOW_", "MONGODB_", "QSTASH_", "XDG_", "UV_"))
        and k not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "CRON_SECRET", "JWT_SECRET", "PUBLIC_BASE_URL")
    }
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join([str(shims), str(venv_bin), env.get("PATH", "")]),
        VERCEL_TELEMETRY_DISABLED="1",
        NO_UPDATE_NOTIFIER="1",
        UV_PYTHON_PREFERENCE="only-system",
        PYTHONUNBUFFERED="1",
        **app_env,
    )
    return env


# --- the server ----------------------------------------------------------------------------


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the CLI's process group (it stops its function processes), then SIGKILL what is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # stragglers that outlived the CLI
    except ProcessLookupError:
        pass


def wait_for_function(process: subprocess.Popen, url: str, log_path: Path) -> None:
    """Wait until the chat function answers. The first call blocks while the CLI builds it."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"vercel dev exited with {process.returncode}:\n{tail(log_path)}", pytrace=False)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"vercel dev did not serve {url} within {STARTUP_TIMEOUT:.0f} s:\n{tail(log_path)}",
                        pytrace=False)
        try:
            response = requests.get(url, timeout=max(remaining, 1))
        except requests.ConnectionError:
            time.sleep(0.5)  # not listening yet
            continue
        except requests.Timeout:
            continue
        if response.status_code == 405 and response.headers.get("Allow") == "POST":
            return
        pytest.fail(f"The chat function did not come up: GET {url} -> {response.status_code}\n"
                    f"{response.text[:2000]}\n--- vercel dev log ---\n{tail(log_path)}{hint(log_path)}",
                    pytrace=False)


def hint(log_path: Path) -> str:
    """Name the known cause of a failed start, when the log shows it."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    if "ModuleNotFoundError" in text and "Installing required dependencies from" in text:
        return ("\n\nHINT: @vercel/python installs a function's packages from the nearest pyproject.toml when there "
                "is one, and ignores requirements.txt next to it. pyproject.toml's [project] must list the "
                "dependencies of requirements.txt (on a real deployment too).")
    if "python-build-standalone" in text or "No interpreter found" in text:
        return "\n\nHINT: uv found no system Python 3.12 (it refuses interpreters inside a virtualenv)."
    return ""


@pytest.fixture(scope="module")
def vercel_dev(database_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VercelDev]:
    cli = vercel_cli()
    venv_bin = venv_bin_with_uv()
    python = base_python312()
    work = tmp_path_factory.mktemp("vercel-dev")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"

    db_name = f"vercel_{uuid.uuid4().hex[:10]}"
    client = get_client(database_server.uri)
    users = UserStore(Store(client, db_name))
    partner = users.upsert("partner@example.gc.ca", Role.PARTNER)
    token = issue_token(partner.id, JWT_SECRET)

    app_env = {
        "MONGODB_URI": database_server.uri,
        "MONGODB_DB": db_name,
        "JWT_SECRET": JWT_SECRET,
        "PUBLIC_BASE_URL": base_url,
        "QSTASH_URL": "http://127.0.0.1:9",  # nothing listens; chat never publishes
        "LOG_LEVEL": "INFO",
    }
    check_dotenv(list(app_env))
    home = work / "home"
    home.mkdir()
    env = cli_environment(home, python_shims(work / "bin", python), venv_bin, app_env)
    config = dev_config(work / "vercel.json", app_env)
    forget_generated_locks()

    log_path = work / "vercel-dev.log"
    argv = [str(cli), "dev", "--local", "--yes", "--listen", f"127.0.0.1:{port}", "--local-config", str(config)]
    if os.environ.get("VERCEL_DEV_DEBUG"):
        argv.append("--debug")
    started = time.monotonic()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_function(process, f"{base_url}/api/chat/message", log_path)
        startup = time.monotonic() - started
        print(f"\n[vercel dev] chat function ready after {startup:.1f} s (log: {log_path})")
        yield VercelDev(base_url=base_url, token=token, log_path=log_path, startup_seconds=startup)
    finally:
        stop_group(process)
        client.drop_database(db_name)


# --- the tests -----------------------------------------------------------------------------


def test_a_signed_in_partner_gets_an_offline_answer_with_a_citation(vercel_dev: VercelDev):
    response = requests.post(
        f"{vercel_dev.base_url}/api/chat/message",
        json={"message": "How do I renew my passport?", "lang": "en"},
        headers={"Authorization": f"Bearer {vercel_dev.token}"},
        timeout=60,
    )

    assert response.status_code == 200, f"{response.text}\n--- log ---\n{vercel_dev.log_tail()}"
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["answer"].startswith("[Offline answer]")
    assert body["citationUrl"].startswith("https://www.canada.ca/en/")
    assert body["chatId"] and body["interactionId"]
    # The handler takes its request id from X-Vercel-Id, which only Vercel's router sets.
    assert response.headers["X-Request-Id"].startswith("dev1::")


def test_no_token_gets_the_401_json_envelope(vercel_dev: VercelDev):
    response = requests.post(f"{vercel_dev.base_url}/api/chat/message",
                             json={"message": "How do I renew my passport?", "lang": "en"}, timeout=60)

    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "MISSING_TOKEN"
    assert error["message"]


def test_get_gets_405_with_allow_post(vercel_dev: VercelDev):
    response = requests.get(f"{vercel_dev.base_url}/api/chat/message",
                            headers={"Authorization": f"Bearer {vercel_dev.token}"}, timeout=60)

    assert response.status_code == 405, response.text
    assert response.headers["Allow"] == "POST"
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
