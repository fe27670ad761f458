"""The local runtime's blue/green release switch, on real workspace servers (the bundled one, and a copy that says
another version, run by its command): the new server starts beside the old one and becomes current once it answers
with its release; :meth:`LocalCompute.retire` stops the old one. A crash at any point leaves a state the next
``ensure`` finishes, and stopping, the leftovers and teardown see both slots."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from control_plane.providers.base import ProviderError, RunRelease, ServerConfig, WorkspaceSpec
from control_plane.providers.local import LocalCompute, lock_held, process_gone
from control_plane.providers.local_slots import SLOTS
from tests.local_runtime.builds import build_release
from workspace_server.release import RELEASE_VERSION

NEXT = "0.1.1-next"


@dataclass
class Runtime:
    """A workspace's compute on the local runtime, and the releases it can run."""

    compute: LocalCompute
    spec: WorkspaceSpec
    config: ServerConfig
    bundled: RunRelease
    next: RunRelease

    def ensure(self, release: RunRelease) -> tuple[int, int, tuple[str, ...]]:
        """(port, pid, created) of ``ensure`` with ``release``."""
        ensured = self.compute.ensure(self.spec, replace(self.config, release=release))
        return ensured.outputs["port"], ensured.outputs["pid"], ensured.created

    def slot(self, name: str) -> Path:
        return self.compute.slots(self.spec).root / name

    def running(self) -> list[str]:
        """The slots whose server runs."""
        return [name for name in SLOTS if lock_held(self.slot(name) / "server.lock")]


def release_of(port: int) -> str:
    return str(httpx.get(f"http://127.0.0.1:{port}/api/v4/system/ping", timeout=10).json()["CanopyRelease"])


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    where = tmp_path_factory.mktemp("builds")
    return {NEXT: build_release(where, NEXT), "liar": build_release(where, "0.1.2-liar")}


@pytest.fixture(scope="module")
def database(create_database: Callable[[str], str]) -> str:
    """One database for the module's servers (each test's workspace is new; what they store is not looked at)."""
    return create_database("slots")


@pytest.fixture
def runtime(database: str, tmp_path: Path, builds: dict[str, list[str]]) -> Iterator[Runtime]:
    spec = WorkspaceSpec(uuid.uuid4(), "slots", uuid.uuid4(), "professional", "local", "Slots")
    config = ServerConfig(
        database_url=database,
        files_dir=str(tmp_path / "files"),
        public_url="http://127.0.0.1:9/w/slots",
        control_token="control-token-for-slot-tests",
        site_name="Slots",
        team_name="slots",
        team_display_name="Slots",
    )
    compute = LocalCompute(tmp_path / "state", ready_timeout=60)
    bundled = RunRelease(RELEASE_VERSION, "canopy/workspace-server:bundled", None)
    upgraded = RunRelease(NEXT, "canopy/workspace-server:next", tuple(builds[NEXT]))
    yield Runtime(compute, spec, config, bundled, upgraded)
    compute.teardown(spec)


def test_a_switch_starts_the_new_release_beside_the_old_and_retire_stops_the_old(runtime: Runtime) -> None:
    old_port, old_pid, created = runtime.ensure(runtime.bundled)
    assert created == ("server",) and release_of(old_port) == RELEASE_VERSION and runtime.running() == ["runtime"]

    port, pid, created = runtime.ensure(runtime.next)
    assert created == ("server",) and port != old_port and release_of(port) == NEXT
    assert runtime.compute.runtime_dir(runtime.spec).name == "runtime-b"
    assert release_of(old_port) == RELEASE_VERSION, "the old server serves until it is retired"

    assert runtime.ensure(runtime.next) == (port, pid, ()), "a rerun (a crash before the outputs were recorded)"
    runtime.compute.retire(runtime.spec)
    assert process_gone(old_pid) and runtime.running() == ["runtime-b"] and release_of(port) == NEXT
    assert runtime.ensure(runtime.next) == (port, pid, ()), "same release: nothing changes"

    back_port, _, created = runtime.ensure(runtime.bundled)  # the next switch uses the first slot again
    assert created == ("server",) and release_of(back_port) == RELEASE_VERSION
    assert runtime.compute.runtime_dir(runtime.spec).name == "runtime"


def test_a_crash_before_the_flip_is_finished_by_the_next_ensure(runtime: Runtime) -> None:
    _, old_pid, _ = runtime.ensure(runtime.bundled)
    # What a switch that died after starting the new server, before pointing at it, leaves behind.
    slot = runtime.slot("runtime-b")
    started = runtime.compute._spawn(slot, replace(runtime.config, release=runtime.next))
    runtime.compute._wait_ready(slot, started)
    assert runtime.compute.runtime_dir(runtime.spec).name == "runtime"

    port, pid, created = runtime.ensure(runtime.next)
    assert created == () and pid == started and release_of(port) == NEXT, "the started server is adopted, not doubled"
    assert runtime.compute.runtime_dir(runtime.spec).name == "runtime-b"
    runtime.compute.retire(runtime.spec)
    assert process_gone(old_pid) and runtime.running() == ["runtime-b"]


def test_a_return_before_the_retire_adopts_the_previous_server(runtime: Runtime) -> None:
    old_port, old_pid, _ = runtime.ensure(runtime.bundled)
    _, new_pid, _ = runtime.ensure(runtime.next)

    assert runtime.ensure(runtime.bundled) == (old_port, old_pid, ()), "rolled back at once: the old one is current"
    runtime.compute.retire(runtime.spec)
    assert process_gone(new_pid) and runtime.running() == ["runtime"] and release_of(old_port) == RELEASE_VERSION


def test_a_release_that_answers_as_another_is_stopped_and_the_old_keeps_serving(
    runtime: Runtime, builds: dict[str, list[str]]
) -> None:
    old_port, old_pid, _ = runtime.ensure(runtime.bundled)
    liar = RunRelease("0.1.3", "canopy/workspace-server:liar", tuple(builds["liar"]))
    with pytest.raises(ProviderError, match=re.escape("started as release 0.1.3 answers as 0.1.2-liar")):
        runtime.ensure(liar)
    assert runtime.running() == ["runtime"] and runtime.compute.runtime_dir(runtime.spec).name == "runtime"
    assert runtime.ensure(runtime.bundled) == (old_port, old_pid, ())


def test_a_command_that_cannot_start_is_a_clear_error(runtime: Runtime, tmp_path: Path) -> None:
    missing = RunRelease("0.1.4", "canopy/workspace-server:gone", (str(tmp_path / "no-such-program"),))
    with pytest.raises(ProviderError, match="the release's command did not start: FileNotFoundError"):
        runtime.ensure(missing)


def test_stop_stop_all_leftovers_and_teardown_see_both_slots(runtime: Runtime) -> None:
    _, old_pid, _ = runtime.ensure(runtime.bundled)
    _, new_pid, _ = runtime.ensure(runtime.next)
    assert len(runtime.compute.leftovers(runtime.spec)) == 2

    runtime.compute.stop(runtime.spec)  # hibernation, in the middle of a switch
    assert process_gone(old_pid) and process_gone(new_pid) and runtime.running() == []
    port, _, created = runtime.ensure(runtime.next)  # the wake starts the current release in the current slot
    assert created == ("server",) and release_of(port) == NEXT and runtime.running() == ["runtime-b"]

    runtime.ensure(runtime.bundled)
    assert runtime.compute.stop_all() == 2 and runtime.running() == []  # ``canopy run`` on exit

    runtime.compute.teardown(runtime.spec)
    assert runtime.compute.leftovers(runtime.spec) == []
    assert not any(runtime.slot(name).exists() for name in (*SLOTS, "runtime.current"))
