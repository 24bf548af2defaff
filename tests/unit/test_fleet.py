"""The fleet's pure parts: host records (tokens never shown), the hosts file, placement,
the per-host stream cursor."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hive_lab.core.errors import BadRequest
from hive_lab.fleet.federation import parse_cursor
from hive_lab.fleet.hosts import Host, HostConfigError, HostsFile, parse_hosts
from hive_lab.fleet.placement import Candidate, NoPlacement, place


def test_a_host_reads_its_token_at_use_and_never_shows_it(tmp_path: Path) -> None:
    secret = tmp_path / "tok"
    secret.write_text("s3cret-token\n")
    host = Host.parse({"name": "gpu1", "url": "http://10.0.0.5:8888", "token_file": str(secret),
                       "labels": ["gpu", "gpu"]})
    assert host.token() == "s3cret-token"
    assert host.labels == ("gpu",) and host.url == "http://10.0.0.5:8888/"
    shown = repr(host) + json.dumps(host.to_json()) + json.dumps(host.to_record())
    assert "s3cret" not in shown and host.to_json()["token"] == "<redacted>"
    secret.write_text("rotated\n")
    assert host.token() == "rotated"


@pytest.mark.parametrize("bad", [
    {"name": "-x", "url": "http://h:1/"},
    {"name": "a", "url": "ftp://h/"},
    {"name": "a", "url": "http://user:pw@h:1/"},
    {"name": "a", "url": "http://h:1/?token=abc"},
    {"name": "a", "url": "http://h:1/", "token": "inline"},
    {"name": "a", "url": "http://h:1/", "labels": ["ok", "no spaces"]},
    {"name": "a", "url": "http://h:1/", "capacity": -1},
    "not an object",
])
def test_bad_host_records_are_refused_with_a_reason(bad: object) -> None:
    with pytest.raises(HostConfigError):
        Host.parse(bad)


def test_host_names_are_unique_and_not_the_local_name() -> None:
    with pytest.raises(HostConfigError):
        parse_hosts([{"name": "a", "url": "http://h:1/"}, {"name": "a", "url": "http://h:2/"}])
    with pytest.raises(HostConfigError):
        parse_hosts([{"name": "local", "url": "http://h:1/"}], reserved=["local"])


def test_the_hosts_file_adds_replaces_and_removes(tmp_path: Path) -> None:
    f = HostsFile(tmp_path / "hosts.json")
    assert f.cached() == []
    f.add(Host.parse({"name": "a", "url": "http://h:1/", "token_file": "/t"}))
    assert f.changed() and [h.name for h in f.cached()] == ["a"] and not f.changed()
    with pytest.raises(HostConfigError):
        f.add(Host.parse({"name": "a", "url": "http://h:9/"}))
    f.add(Host.parse({"name": "a", "url": "http://h:9/"}), replace=True)
    assert f.load()[0].url == "http://h:9/"
    assert f.remove("a") == [] and f.load() == []
    with pytest.raises(HostConfigError):
        f.remove("a")


def _c(name: str, labels: tuple[str, ...] = (), reachable: bool = True, live: int = 0,
       capacity: int | None = 4) -> Candidate:
    return Candidate(name, labels, reachable, live, capacity)


def test_placement_takes_labels_then_the_most_free_slots() -> None:
    hosts = [_c("a", ("gpu",), live=3), _c("b", ("gpu",), live=1), _c("c", live=0)]
    chosen = place(hosts, ("gpu",))
    assert chosen.host == "b" and "gpu" in chosen.reason and "3 of 4" in chosen.reason
    assert place(hosts).host == "c"


def test_placement_skips_unreachable_and_full_hosts_and_says_why() -> None:
    hosts = [_c("a", ("gpu",), reachable=False), _c("b", ("gpu",), live=4)]
    with pytest.raises(NoPlacement) as info:
        place(hosts, ("gpu",))
    assert "a: unreachable" in info.value.reason and "b: full" in info.value.reason
    with pytest.raises(NoPlacement, match="lacks label arm"):
        place(hosts, ("arm",), host="a")
    with pytest.raises(NoPlacement, match="unreachable"):
        place(hosts, (), host="a")
    assert place([_c("x", capacity=None, live=50)], (), host="x").host == "x"


def test_the_stream_cursor_is_one_position_per_host() -> None:
    assert parse_cursor("local:12,gpu1:40") == {"local": 12, "gpu1": 40}
    assert parse_cursor("7") == {"": 7}
    assert parse_cursor(None) == {}
    for bad in ("a:b", "a:-1", "-x:3", "a:1,,"):
        with pytest.raises(BadRequest):
            parse_cursor(bad)


def test_an_ssh_host_names_its_keys_and_a_loopback_url() -> None:
    ssh = {"host": "build3", "user": "me", "key_file": "/k", "known_hosts": "/kh", "port": 2222}
    host = Host.parse({"name": "b3", "url": "http://127.0.0.1:8888/", "ssh": ssh})
    assert host.ssh is not None and host.ssh.port == 2222
    assert host.to_json()["ssh"] == {"host": "build3", "port": 2222, "user": "me"}
    assert Host.parse(host.to_record()) == host
    for bad in ({**ssh, "known_hosts": ""}, {**ssh, "port": 0}, {**ssh, "host": "-oProxyCommand=x"},
                {**ssh, "password": "pw"}, "me@build3"):
        with pytest.raises(HostConfigError):
            Host.parse({"name": "b3", "url": "http://127.0.0.1:8888/", "ssh": bad})
    with pytest.raises(HostConfigError, match="loopback"):
        Host.parse({"name": "b3", "url": "http://10.0.0.5:8888/", "ssh": ssh})
