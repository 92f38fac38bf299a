"""A Galera group commit's decisions: each unit answered as if the units ran one after another."""

from __future__ import annotations

from galerakv.backend import statements
from galerakv.backend.base import Compare, Entry, Op, OpResult, TxnResult
from galerakv.backend.writeset import GroupPlan, Unit, blind_plan, group_keys

NOW = 1_000_000.0


def entry(key: str, value: bytes = b"v", version: str = "10", expires_at: float | None = None) -> Entry:
    return Entry(key, value, "text/plain", version, expires_at)


def put(key: str, value: bytes = b"new", **kw: object) -> Op:
    return Op("put", key, value, "text/plain", **kw)  # type: ignore[arg-type]


def one(ns: str, op: Op) -> Unit:
    return Unit(ns, "op", (op,))


def test_put_creates_then_replaces_and_each_gets_a_new_version() -> None:
    plan = GroupPlan({("a", "k"): entry("k")}, NOW)
    replaced = plan.run(one("a", put("k")))
    created = plan.run(one("a", put("fresh")))
    assert isinstance(replaced, OpResult) and isinstance(created, OpResult)
    assert replaced.status == "ok" and created.status == "created"
    assert replaced.entry is not None and replaced.entry.version != "10"
    assert [(ns, e.key) for ns, e in plan.upserts()] == [("a", "k"), ("a", "fresh")]
    assert plan.deletes() == []


def test_an_expired_row_counts_as_absent() -> None:
    plan = GroupPlan({("a", "old"): entry("old", expires_at=NOW - 1)}, NOW)
    assert plan.run(one("a", Op("get", "old"))) == OpResult("not_found")
    assert plan.run(one("a", Op("delete", "old"))) == OpResult("not_found")
    result = plan.run(one("a", put("old", if_none_match=True)))
    assert isinstance(result, OpResult) and result.status == "created"


def test_later_units_see_earlier_units_of_the_same_group() -> None:
    plan = GroupPlan({}, NOW)
    first = plan.run(one("a", put("k", b"1", if_none_match=True)))
    second = plan.run(one("a", put("k", b"2", if_none_match=True)))
    assert isinstance(first, OpResult) and first.status == "created"
    assert isinstance(second, OpResult) and second.status == "precondition_failed"
    assert first.entry is not None
    cas = plan.run(one("a", put("k", b"3", if_match=first.entry.version)))
    assert isinstance(cas, OpResult) and cas.status == "ok"
    stale = plan.run(one("a", put("k", b"4", if_match=first.entry.version)))
    assert isinstance(stale, OpResult) and stale.status == "precondition_failed"
    # only the final state of the key is written back
    (final,) = plan.upserts()
    assert final[1].value == b"3"


def test_one_units_failed_condition_leaves_the_others_alone() -> None:
    plan = GroupPlan({("a", "x"): entry("x", version="5")}, NOW)
    bad = plan.run(one("a", put("x", if_match="4")))
    good = plan.run(one("a", put("y")))
    assert isinstance(bad, OpResult) and bad.status == "precondition_failed"
    assert bad.entry is not None and bad.entry.version == "5"
    assert isinstance(good, OpResult) and good.status == "created"
    assert [e.key for _, e in plan.upserts()] == ["y"]


def test_namespaces_are_kept_apart() -> None:
    plan = GroupPlan({("a", "k"): entry("k")}, NOW)
    result = plan.run(one("b", put("k")))
    assert isinstance(result, OpResult) and result.status == "created"


def test_delete_then_put_ends_as_a_put_and_put_then_delete_as_a_delete() -> None:
    plan = GroupPlan({("a", "p"): entry("p"), ("a", "q"): entry("q")}, NOW)
    plan.run(one("a", Op("delete", "p")))
    plan.run(one("a", put("p")))
    plan.run(one("a", put("q")))
    plan.run(one("a", Op("delete", "q")))
    assert [e.key for _, e in plan.upserts()] == ["p"]
    assert plan.deletes() == [("a", "q")]


def test_batch_runs_its_operations_in_order() -> None:
    plan = GroupPlan({("a", "k"): entry("k", b"old")}, NOW)
    results = plan.run(Unit("a", "batch", (Op("get", "k"), put("k", b"new"), Op("get", "k"),
                                           Op("delete", "gone"))))
    assert isinstance(results, list)
    assert [r.status for r in results] == ["ok", "ok", "ok", "not_found"]
    assert results[0].entry is not None and results[0].entry.value == b"old"
    assert results[2].entry is not None and results[2].entry.value == b"new"


def test_txn_takes_the_success_or_failure_branch_on_its_compares() -> None:
    rows = {("a", "k"): entry("k", b"1", version="7")}
    txn = Unit("a", "txn", (put("k", b"2"),), (Compare("k", "value", b"1"),), (Op("get", "k"),))
    plan = GroupPlan(rows, NOW)
    won = plan.run(txn)
    assert isinstance(won, TxnResult) and won.succeeded and won.results[0].status == "ok"
    lost = plan.run(txn)  # the value is now 2: the compare fails, the failure branch reads
    assert isinstance(lost, TxnResult) and not lost.succeeded
    assert lost.results[0].entry is not None and lost.results[0].entry.value == b"2"


def test_the_witness_prefers_a_new_version_to_an_absent_row() -> None:
    plan = GroupPlan({("a", "gone"): entry("gone")}, NOW)
    assert plan.witness() is None
    plan.run(one("a", Op("delete", "gone")))
    gone = plan.witness()
    assert gone is not None and (gone.ns, gone.key, gone.version, gone.index) == ("a", "gone", None, 1)
    assert gone.history_version == entry("gone").version  # the delete's history row names the version removed
    result = plan.run(one("a", put("new")))
    assert isinstance(result, OpResult) and result.entry is not None
    new = plan.witness()
    assert new is not None and (new.key, new.version, new.index) == ("new", result.entry.version, 2)


def test_every_change_is_logged_in_order_and_each_unit_gets_the_revision_it_ended_at() -> None:
    plan = GroupPlan({("a", "k"): entry("k", b"1", version="7")}, NOW)
    units = [one("a", put("k", b"2")), one("a", put("k", b"3")), one("a", Op("delete", "missing")),
             Unit("a", "batch", (put("x"), Op("delete", "k")))]
    plan.run_all(units)
    assert [(c.key, c.entry is not None) for c in plan.log] == [("k", True), ("k", True), ("x", True), ("k", False)]
    assert plan.log[3].removed == plan.log[1].entry.version  # type: ignore[union-attr]
    stamped = plan.stamped(104)  # the group's four changes took revisions 101-104
    assert [r.revision for r in stamped[:3]] == [101, 102, 102]  # type: ignore[union-attr]
    assert [r.revision for r in stamped[3]] == [104, 104]  # type: ignore[union-attr]
    assert [e.key for _, e in plan.upserts()] == ["x"] and plan.deletes() == [("a", "k")]  # rows: final state only


def test_history_rows_take_consecutive_revisions_from_the_counter() -> None:
    plan = GroupPlan({}, NOW)
    plan.run_all([one("a", put("k", b"v")), one("a", Op("delete", "k"))])
    sql, args = statements.changes(plan, 1 << 20)
    assert sql[-3:] == ["INSERT INTO kv_history (rev, ns, k, v, ct, ver, exp, at) VALUES "
                        "(LAST_INSERT_ID() - %s, %s, %s, %s, %s, %s, %s, %s), "
                        "(LAST_INSERT_ID() - %s, %s, %s, %s, %s, %s, %s, %s)", "COMMIT", "SELECT LAST_INSERT_ID()"]
    assert "LAST_INSERT_ID(rev + %s)" in sql[-4] and args[-17] == 2  # the counter moves on by the two changes
    assert args[-16] == 1 and args[-8] == 0  # offsets from the new counter value: revisions n-1, n
    assert args[-5:-3] == [None, None]  # a delete has no value and no content type
    empty = GroupPlan({}, NOW)
    empty.run_all([one("a", Op("delete", "nothing"))])
    assert statements.changes(empty, 1 << 20)[0] == [
        "SELECT rev FROM galerakv_revision WHERE id = 1", "COMMIT"]  # no change: the revision it was decided at


def test_group_keys_are_unique_and_sorted_per_namespace() -> None:
    units = [one("b", put("z")), Unit("a", "txn", (put("m"),), (Compare("c", "exists", True),), (put("m"),)),
             one("a", put("b")), one("b", put("z"))]
    assert group_keys(units) == {"a": ["b", "c", "m"], "b": ["z"]}


def test_values_are_read_only_when_a_unit_needs_them() -> None:
    assert not one("a", put("k")).reads_values
    assert Unit("a", "batch", (Op("get", "k"),)).reads_values
    assert Unit("a", "txn", (), (Compare("k", "value", b"x"),)).reads_values
    assert not Unit("a", "txn", (), (Compare("k", "version", "1"),)).reads_values


def test_a_blind_group_writes_the_same_rows_whatever_is_stored() -> None:
    units = [one("a", put("k", b"1")), one("a", put("new", b"2", ttl=5)), one("a", put("k", b"3"))]
    assert all(u.blind for u in units)
    sent = blind_plan(units, NOW)
    stored = {("a", "k"): entry("k", version="7"), ("a", "new"): entry("new", expires_at=NOW - 1)}
    decided = GroupPlan(stored, sent.now, sent.versions)
    results = decided.run_all(units)
    assert decided.upserts() == sent.upserts()
    # the statuses come from the stored rows: k existed, new had expired (so it is created)
    assert [r.status for r in results if isinstance(r, OpResult)] == ["ok", "created", "ok"]
    assert [e.value for _, e in sent.upserts()] == [b"3", b"2"]


def test_only_unconditional_single_puts_are_blind() -> None:
    assert one("a", put("k")).blind
    assert not one("a", put("k", if_match="1")).blind
    assert not one("a", put("k", if_none_match=True)).blind
    assert not one("a", Op("delete", "k")).blind
    assert not Unit("a", "batch", (put("k"),)).blind


def test_upserts_are_split_into_statements_under_the_size_bound() -> None:
    from galerakv.backend.statements import chunks

    ups = [("a", entry(f"k{i}", b"x" * size)) for i, size in enumerate((40, 40, 40, 500, 10))]
    parts = chunks(ups, 100)
    assert [[e.key for _, e in c] for c in parts] == [["k0", "k1"], ["k2"], ["k3"], ["k4"]]
    assert chunks([], 100) == []


def test_keys_become_one_condition_per_namespace_with_their_arguments() -> None:
    from galerakv.backend.statements import where_keys

    sql, args = where_keys({"a": ["k1", "k2"], "b": ["z"]})
    assert sql == "(ns = %s AND k IN (%s, %s)) OR (ns = %s AND k IN (%s))"
    assert args == [b"a", b"k1", b"k2", b"b", b"z"]
