"""Every command's ``--json``, on a queue with a job in every state, checked against its
schema in ``schemas/``; and the quarantine's pages."""

from __future__ import annotations

import json

import redis

from queuectl.core.client import Client

from .helpers import Cli, assert_error, assert_ok, finish, make_dead, register_worker
from .schemas import check, json_of


def _every_state(client: Client, raw: redis.Redis) -> None:
    make_dead(client, "dead")
    client.enqueue("echo p", job_id="pending", env={"REGION": "eu"}, timeout=1.5)
    client.enqueue("echo r", job_id="running", queue="q2")
    client.enqueue("echo s", job_id="scheduled", delay=3600, max_retries=2)
    client.enqueue("echo f", job_id="failed", queue="q3", max_retries=3)
    client.enqueue("echo c", job_id="completed", queue="q3")
    client.enqueue("echo x", job_id="cancelled", queue="q3")
    client.enqueue("echo q", job_id="quarantined", queue="q4")
    finish(client, "failed", b"f\n", exit_code=2, queue="q3")
    finish(client, "completed", b"c\n", queue="q3")
    client.cancel("cancelled")
    register_worker(client, "w1", queues="q2")
    held = client.store.fetch("w1", ["q2"])
    assert held is not None and held.id == "running"
    # A record that does not parse: the fetch sets the job aside with the reason.
    raw.hset(client.keys.job("quarantined"), "attempts", "many")
    assert client.store.fetch("w1", ["q4"]) is None
    k = client.keys
    client.store.heartbeat(k.scheduler("s1"), k.schedulers, "s1", 30.0, "t", {"id": "s1"})


def test_every_json_output_is_valid_against_its_schema(cli: Cli, client: Client,
                                                       raw: redis.Redis) -> None:
    _every_state(client, raw)
    status = json_of(cli("status", "--json"), "status")
    assert set(status["states"].values()) == {1}, status["states"]
    # The quarantined job's record does not parse: listed on stderr, not in the array.
    listed = cli("list", "--limit", "0", "--json")
    assert listed.code == 0 and "cannot be read: quarantined" in listed.err
    everything = check(json.loads(listed.out), "job-list")
    assert {j["id"]: j["state"] for j in everything} == {
        name: name for name in ("pending", "running", "scheduled", "failed", "completed",
                                "cancelled", "dead")} | {"running": "processing"}
    for job in everything:
        assert json_of(cli("show", job["id"], "--json"), "show") == job
        assert json_of(cli("list", "--state", job["state"], "--queue", job["queue"], "--json"),
                       "job-list") == [job]
    pending = json_of(cli("show", "pending", "--json"), "job")
    assert (pending["env"], pending["timeout"], pending["max_retries"]) == (
        {"REGION": "eu"}, 1.5, None)
    unreadable = cli("show", "quarantined", "--json")
    assert unreadable.code == 8
    shown = check(json.loads(unreadable.out), "show")
    assert shown["raw"]["attempts"] == "many" and "attempts" in shown["quarantine"]
    assert check(json.loads(cli("list", "--state", "quarantined", "--json").out),
                 "job-list") == []

    assert [j["id"] for j in json_of(cli("dlq", "list", "--json"), "job-list")] == ["dead"]
    [entry] = json_of(cli("quarantine", "list", "--json"), "quarantine-list")
    assert (entry["id"], entry["by"]) == ("quarantined", "fetch") and "attempts" in entry["reason"]
    assert json_of(cli("worker", "list", "--json"), "worker-list")[0]["jobs"] == ["running"]
    json_of(cli("config", "list", "--json"), "config-list")
    json_of(cli("config", "get", "job-timeout", "--json"), "config-get")
    json_of(cli("redis", "status", "--json"), "redis-status")
    waited = cli("wait", "completed", "dead", "cancelled", "quarantined", "--json")
    assert waited.code == 1
    assert [j["job"] is None for j in check(json.loads(waited.out), "wait")["jobs"]] == [
        False, False, False, True]
    doctor = cli("doctor", "--json")
    assert doctor.code == 1  # a job in quarantine needs someone
    assert check(json.loads(doctor.out), "doctor")["quarantined"] == 1


def test_quarantine_list_pages_with_a_cursor(cli: Cli, client: Client,
                                             raw: redis.Redis) -> None:
    for name in ("a", "b", "c"):
        client.enqueue("true", job_id=name)
        raw.hset(client.keys.job(name), "state", "bogus")
        assert client.store.fetch("w", ["default"]) is None
    first = cli("quarantine", "list", "--limit", "2", "--json")
    assert [e["id"] for e in check(json.loads(first.out), "quarantine-list")] == ["a", "b"]
    assert first.err == ("queuectl: showing 2 of 3 quarantined jobs; "
                         "for the next page add --cursor quarantined:2\n")
    rest = assert_ok(cli("quarantine", "list", "--cursor", "quarantined:2"))
    assert [line.split()[0] for line in rest.splitlines()[1:]] == ["c"]
    assert_error(cli("quarantine", "list", "--cursor", "dead:2"), 3, "not quarantined ones")
