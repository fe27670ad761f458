"""A fork server of workspace servers: ``python -m workspace_server.forkserver <root>``.

Starting a server with ``python -m workspace_server`` spends about a second (more on a busy machine) starting the
interpreter and importing the server before it does anything for its workspace; that second is most of the wait
of a request that wakes a hibernated workspace. This process pays it once: it imports the server, then starts each
server by forking itself. The control plane's local runtime keeps one per worker process
(``control_plane.providers.local``).

Protocol: one JSON request per line on stdin, ``{"env": {...}, "cwd": "<dir>", "log": "<file>"}`` (``cwd`` must be
under ``<root>``), answered by one line on stdout, ``{"pid": <pid>}`` or ``{"error": "<why>"}``. The child leaves
the fork server's session, writes its output to ``log``, takes ``env`` as its whole environment (so
``/proc/<pid>/environ`` keeps the fork server's: servers are found by the ``server.lock`` they hold open), and runs
the server's ``main()``. Children are reaped by the kernel; they outlive the fork server, which exits when its
stdin closes (its parent is gone).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from workspace_server import __main__ as server  # imported once, before any request


def _child(env: dict[str, str], cwd: Path, log: Path) -> None:
    """In the forked child: become the workspace's server (never returns)."""
    status = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server waits for its own migration child
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setsid()
        output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        nothing = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nothing, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        os.close(nothing)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        server.main()
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _start(request: dict[str, Any], root: Path) -> int:
    """Fork a server as ``request`` says; returns its pid."""
    env, cwd, log = request["env"], Path(request["cwd"]).resolve(), Path(request["log"])
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ValueError("env must map names to strings")
    if not cwd.is_relative_to(root):
        raise ValueError(f"{cwd} is not under {root}")
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        _child(env, cwd, log)
    return pid


def main() -> None:
    """Serve fork requests until stdin closes."""
    root = Path(sys.argv[1]).resolve()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # no zombies: the kernel reaps the children
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for its parent, whose exit closes stdin
    for line in sys.stdin:
        try:
            answer: dict[str, Any] = {"pid": _start(json.loads(line), root)}
        except (ValueError, KeyError, TypeError, OSError) as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
