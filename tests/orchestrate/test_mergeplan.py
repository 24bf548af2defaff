"""The merge queue's pure decisions: the order and its reasons, what moves an item back."""
from __future__ import annotations

from dataclasses import replace

from hive_lab import wire
from hive_lab.orchestrate import mergeplan as mp
from hive_lab.orchestrate.mergeplan import MergeItem


def item(n: int, state: str = mp.QUEUED, **kw: object) -> MergeItem:
    return MergeItem(id=n, repo="/r", branch=f"b{n}", base="main", state=state, **kw)  # type: ignore[arg-type]


def ids(placements: list[mp.Placement]) -> list[int]:
    return [p.item.id for p in placements]


def test_states_are_the_wire_vocabulary() -> None:
    assert wire.MERGE_STATES == mp.STATES


def test_offer_order_when_nothing_is_predicted() -> None:
    placed = mp.order([item(3), item(1), item(2)], {}, {})
    assert ids(placed) == [1, 2, 3] and [p.position for p in placed] == [1, 2, 3]
    assert all("offer order" in p.reason for p in placed)


def test_a_later_conflicting_branch_goes_after_the_clean_ones_and_says_why() -> None:
    pairs = {frozenset((1, 2)): ["a.txt"]}
    placed = mp.order([item(1), item(2), item(3)], pairs, {})
    assert ids(placed) == [1, 3, 2]
    by_id = {p.item.id: p for p in placed}
    assert "before #2" in by_id[1].reason and "a.txt" in by_id[1].reason
    assert "after #1" in by_id[2].reason and "predicted conflict" in by_id[2].reason
    assert by_id[2].predicted == ({"with": 1, "branch": "b1", "paths": ["a.txt"]},)


def test_the_item_in_flight_is_never_preempted() -> None:
    pairs = {frozenset((1, 2)): ["a.txt"]}
    placed = mp.order([item(1), item(2, mp.CHECKING)], pairs, {})
    assert ids(placed) == [2, 1]
    assert "in progress" in placed[0].reason and "after #2" in placed[1].reason
    assert mp.next_to_start(placed).id == 2  # type: ignore[union-attr]


def test_a_branch_conflicting_with_the_base_already_goes_last() -> None:
    placed = mp.order([item(1), item(2)], {}, {1: ["x.py"]})
    assert ids(placed) == [2, 1] and "conflict with main already" in placed[1].reason


def test_next_to_start_skips_waiting_items() -> None:
    placed = mp.order([item(1, mp.WAITING), item(2)], {}, {})
    assert mp.next_to_start(placed).id == 2  # type: ignore[union-attr]
    assert mp.next_to_start(mp.order([item(1, mp.WAITING)], {}, {})) is None


def test_after_checks() -> None:
    assert mp.after_checks(False, True, True, "boom")[0] == mp.NEEDS_YOU
    assert mp.after_checks(True, False, False, "")[0] == mp.AWAITING
    assert mp.after_checks(True, True, False, "")[0] == mp.APPROVED
    assert mp.after_checks(True, False, True, "")[0] == mp.APPROVED


def test_before_merge_notices_what_moved() -> None:
    ready = item(1, mp.APPROVED, checked_head="h1", base_sha="b1", approved=True)
    assert mp.before_merge(ready, "h1", "b1") is None
    state, _, keep = mp.before_merge(ready, "h1", "b2")  # type: ignore[misc]
    assert state == mp.QUEUED and keep  # the base moved: same change, approval kept
    state, _, keep = mp.before_merge(ready, "h2", "b1")  # type: ignore[misc]
    assert state == mp.QUEUED and not keep  # new commits: approve again
    assert mp.before_merge(ready, None, "b1")[0] == mp.NEEDS_YOU  # type: ignore[index]


def test_restart_never_merges_twice() -> None:
    merging = item(1, mp.MERGING, checked_head="h")
    assert mp.on_restart(merging, merged_already=True)[0] == mp.MERGED  # type: ignore[index]
    assert mp.on_restart(merging, merged_already=False)[0] == mp.APPROVED  # type: ignore[index]
    assert mp.on_restart(item(1, mp.CHECKING), False)[0] == mp.QUEUED  # type: ignore[index]
    assert mp.on_restart(item(1, mp.AWAITING), False) is None


def test_record_round_trips_through_its_row() -> None:
    m = item(7, mp.NEEDS_YOU, checks=(("make", "test"),), conflicts=("a.txt",),
             check_runs=({"passed": False},), predicted=({"with": 2, "paths": ["a"]},))
    row = {"id": 7, "repo": "/r", "branch": "b7", "base": "main", "state": mp.NEEDS_YOU,
           "created": 0.0, "updated": 0.0, "generation": 0, "data": m.data_json()}
    assert MergeItem.from_row(row) == m
    assert replace(m, state=mp.QUEUED).to_json()["checks"] == [["make", "test"]]


def test_an_approval_is_stale_once_the_branch_has_its_own_new_commits() -> None:
    assert mp.approval_stale(0) is None
    assert mp.approval_stale(2) == (mp.AWAITING, "2 new commits on the branch since it was "
                                                 "approved: approve again")
