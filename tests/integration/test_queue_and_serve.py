"""The job queue with a real worker process, and the service started the way `make run` does."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bootstrap
from services.tables import InboundNotification, NotificationStatus
from tests.conftest import Tenant

ROOT = Path(__file__).resolve().parents[2]


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "PYTEST_"))}
    env.update(overrides)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_worker_process_runs_queued_jobs(
    container: bootstrap.Container, settings: bootstrap.Settings, tenant: Tenant
) -> None:
    now = dt.datetime.now(dt.UTC)
    with container.uow() as uow:
        for key, status, age in [
            ("old-done", "done", 40),
            ("old-pending", "pending", 40),
            ("new-done", "done", 1),
        ]:
            uow.session.add(
                InboundNotification(
                    org_id=tenant.org_id,
                    provider="microsoft",
                    dedupe_key=key,
                    mailbox="a@b.example",
                    payload={},
                    status=status,
                    received_at=now - dt.timedelta(days=age),
                )
            )
        uow.commit()

    env = _env(DATABASE_URL=settings.database_url, INSTANCE_PATH=str(settings.instance_path))
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--workers", "1"],
        cwd=ROOT,
        env=env,
    )
    try:
        result = container.tasks["prune_notifications"]()
        assert result.get(blocking=True, timeout=60) == 1
    finally:
        _stop(worker)

    with container.uow() as uow:
        left = {n.dedupe_key: n.status for n in uow.session.query(InboundNotification)}
    assert left == {"old-pending": NotificationStatus.PENDING, "new-done": NotificationStatus.DONE}


def test_serve_starts_web_and_worker_and_is_ready(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        command = ["flask", "--app", "wsgi", "serve", "--port", str(port), "--web-workers", "1"]
        server = subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=ROOT,
            env=_env(INSTANCE_PATH=str(tmp_path / "instance")),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            ready = None
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    with urllib.request.urlopen(f"{base}/readyz", timeout=30) as response:  # noqa: S310
                        ready = (response.status, json.load(response))
                        break
                except (urllib.error.URLError, OSError):  # not listening yet, or still booting
                    time.sleep(0.3)
            assert ready is not None, log.read_text()
            assert ready[0] == 200
            assert ready[1]["status"] == "ready"

            key = re.search(r"API key \(acts as [^)]+\): (mtc_\S+)", log.read_text())
            assert key, log.read_text()
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"{base}/api/v1/companies?q=contoso",
                headers={"Authorization": f"Bearer {key.group(1)}"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                names = [c["name"] for c in json.load(response)["items"]]
            assert names == ["Contoso Ltd"]
        finally:
            _stop(server)
    assert server.returncode == 0, log.read_text()
