"""An ``mmpy_bot`` bot (PyPI ``mmpy-bot`` 2.2.1, unmodified) logs in with a bot account's personal access
token, listens on the workspace server's WebSocket and answers a message in its thread.

mmpy-bot 2.2.1 and the mattermostautodriver it runs on need ``httpx<0.28`` (mattermostautodriver 2.x passes
``proxies=`` to httpx), while the project runs httpx 0.28: so the test installs the bot into an environment of
its own, ``tests/clients/.venv`` (git-ignored), on first use, and runs the bot there as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.workspace_server.wsclient import User, WsClient, login, ok

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
BOT_VENV = HERE / ".venv"
BOT_SCRIPT = HERE / "mmpy_echo_bot.py"
MMPY_BOT = "mmpy-bot==2.2.1"


def bot_python() -> Path:
    """The interpreter of the bot's environment, created with mmpy-bot installed if missing."""
    python = BOT_VENV / "bin" / "python"
    check = [str(python), "-c", "import importlib.metadata as m; print(m.version('mmpy-bot'))"]
    if python.exists() and subprocess.run(check, capture_output=True, text=True).stdout.strip() == "2.2.1":
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(BOT_VENV)], check=True, timeout=120)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", MMPY_BOT],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"pip install {MMPY_BOT} failed:\n{done.stdout}\n{done.stderr}"
    return python


@pytest.fixture(scope="module")
def admin_user(server: Any, admin: Any) -> User:
    return login(server.base_url, admin.username, admin.password)


@pytest.fixture(scope="module")
def bot(server: Any, admin_user: User, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    python = bot_python()
    team_id = ok(admin_user.api.get(f"/teams/name/{server.team_name}"))["id"]
    created = ok(admin_user.api.post("/bots", json={"username": "pongbot", "display_name": "Pong"}), 201)
    bot_id = created["user_id"]
    ok(admin_user.api.post(f"/teams/{team_id}/members", json={"team_id": team_id, "user_id": bot_id}), 201)
    token = ok(admin_user.api.post(f"/users/{bot_id}/tokens", json={"description": "mmpy_bot test"}))["token"]
    channel = ok(
        admin_user.api.post(
            "/channels", json={"team_id": team_id, "name": "bot-lab", "display_name": "Bot Lab", "type": "O"}
        ),
        201,
    )["id"]
    ok(admin_user.api.post(f"/channels/{channel}/members", json={"user_id": bot_id}), 201)

    log_path = tmp_path_factory.mktemp("mmpy_bot") / "bot.log"
    env = os.environ | {"CANOPY_URL": server.base_url, "CANOPY_TEAM": server.team_name, "CANOPY_BOT_TOKEN": token}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(python), str(BOT_SCRIPT)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # The bot is ready once its WebSocket is registered: the server then reports it online.
        watcher = WsClient(server.base_url, admin_user.token)
        deadline = time.monotonic() + 30
        while True:
            statuses = watcher.reply(watcher.send("get_statuses_by_ids", {"user_ids": [bot_id]}))["data"]
            if statuses[bot_id] == "online":
                break
            assert proc.poll() is None, f"the bot exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"the bot did not connect:\n{log_path.read_text()}"
            time.sleep(0.2)
        watcher.close()
        yield {"id": bot_id, "channel": channel, "log": log_path, "proc": proc}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_bot_answers_in_the_thread(admin_user: User, bot: dict[str, Any]) -> None:
    channel = bot["channel"]
    asked = ok(admin_user.api.post("/posts", json={"channel_id": channel, "message": "ping canopy"}), 201)
    deadline = time.monotonic() + 20
    while True:
        listing = ok(admin_user.api.get(f"/channels/{channel}/posts"))
        answers = [p for p in listing["posts"].values() if p["user_id"] == bot["id"]]
        if answers:
            break
        assert bot["proc"].poll() is None, f"the bot exited:\n{bot['log'].read_text()}"
        assert time.monotonic() < deadline, f"no answer from the bot:\n{bot['log'].read_text()}"
        time.sleep(0.2)
    assert len(answers) == 1, answers
    assert answers[0]["message"] == "pong canopy"
    assert answers[0]["root_id"] == asked["id"]
    log = bot["log"].read_text()
    assert "Traceback" not in log, log
