"""Keeping the watch list current, and the admin's CLI (E2), against the Graph stand-in."""

from __future__ import annotations

import dataclasses

from tests.e2e.conftest import DOMAIN, World


def watched(world: World) -> set[str]:
    return {address for address, row in world.health().items() if row["active"]}


def subscribed_users(world: World) -> set[str]:
    return {s.user_id for s in world.graph.subscriptions.values()}


def refresh(world: World) -> None:
    world.container.tasks["refresh_mailboxes"].call_local(world.tenant.org_id)
    world.drain()


def test_watching_one_group_follows_its_membership(world: World) -> None:
    linda, julie = world.add_user("linda"), world.add_user("julie")
    group = world.graph.add_group("Sales", [linda])
    world.container.settings = dataclasses.replace(
        world.container.settings, ms_watch_group_id=group.id
    )
    world.connect()
    assert watched(world) == {f"linda@{DOMAIN}"}
    assert subscribed_users(world) == {linda.id}

    group.members[:] = [julie.id]  # the admin moved people between groups
    refresh(world)
    assert watched(world) == {f"julie@{DOMAIN}"}
    assert subscribed_users(world) == {julie.id}
    linda_row = world.health()[f"linda@{DOMAIN}"]
    assert linda_row["active"] is False
    assert linda_row["subscription_expires_at"] is None


def test_cli_connect_health_and_reconcile(world: World) -> None:
    world.add_user("linda")
    runner = world.app.test_cli_runner()
    connected = runner.invoke(args=["graph", "connect", "--org", "Contoso"])
    assert connected.exit_code == 0, connected.output
    assert "1 mailboxes watched" in connected.output
    world.drain()
    health = runner.invoke(args=["graph", "health", "--org", "Contoso"])
    assert health.exit_code == 0, health.output
    line = next(row for row in health.output.splitlines() if row.startswith(f"linda@{DOMAIN}"))
    assert line.split()[-1] == "-"  # no error
    assert len(line.split()) >= 6  # expiry, last notification, last sync, pending, error
    queued = runner.invoke(args=["graph", "reconcile", f"linda@{DOMAIN}", "--org", "Contoso"])
    assert queued.exit_code == 0, queued.output
    assert "1 reconciliations queued" in queued.output
    assert world.drain() == 1
    unknown = runner.invoke(args=["graph", "reconcile", "nobody@x.example", "--org", "Contoso"])
    assert unknown.exit_code != 0
    assert "no watched mailbox" in unknown.output
