"""Watches through `kubernetes.watch.Watch().stream`: events after a list's resourceVersion,
label-selector transitions, and bookmarks before `timeoutSeconds` runs out."""

import threading
import time

import pytest
from kubernetes import client, watch

import support


def cm(name, labels=None, **data):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data or None)


@pytest.fixture(scope="module")
def merge(configuration):
    return client.CoreV1Api(support.patch_client(configuration, support.MERGE_PATCH))


class Background:
    """Runs `fn` on a thread and re-raises its failure in the test."""

    def __init__(self, fn):
        self.error = None

        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - handed to the test thread
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self):
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "background changes did not finish"
        if self.error:
            raise self.error


def collect(stream, until, deadline_s=20):
    """Events from `stream` until `until(events)` holds (then the watch is stopped)."""
    events = []
    start = time.monotonic()
    for event in stream:
        events.append(event)
        if until(events):
            break
        assert time.monotonic() - start < deadline_s, f"no end after {deadline_s}s: {summary(events)}"
    return events


def summary(events):
    return [(e["type"], e["raw_object"].get("metadata", {}).get("name")) for e in events]


def test_events_after_list_resource_version(core, merge, namespace):
    core.create_namespaced_config_map(namespace, cm("before", v="0"))
    listed = core.list_namespaced_config_map(namespace)
    rv = listed.metadata.resource_version
    assert "before" in [c.metadata.name for c in listed.items]

    # One change between the list and the watch (replayed from the list's revision), the
    # rest while the watch is open.
    core.create_namespaced_config_map(namespace, cm("w1", v="1"))

    def later():
        time.sleep(0.5)
        merge.patch_namespaced_config_map("w1", namespace, {"data": {"v": "2"}})
        core.delete_namespaced_config_map("w1", namespace)

    w = watch.Watch()
    bg = Background(later)
    try:
        events = collect(
            w.stream(core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=15),
            until=lambda evs: evs[-1]["type"] == "DELETED",
        )
    finally:
        w.stop()
    bg.join()

    # Nothing from before the list; exactly the three changes after it, in order.
    assert summary(events) == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")], summary(events)
    added, modified, deleted = events
    assert isinstance(added["object"], client.V1ConfigMap)
    assert added["object"].data == {"v": "1"}
    assert modified["object"].data == {"v": "2"}
    assert deleted["object"].data == {"v": "2"}
    revisions = [int(e["object"].metadata.resource_version) for e in events]
    assert int(rv) < revisions[0] < revisions[1] < revisions[2], revisions


def test_label_selector_transitions(core, merge, namespace):
    core.create_namespaced_config_map(namespace, cm("sel", labels={"stage": "dev"}))
    rv = core.list_namespaced_config_map(namespace, label_selector="stage=prod").metadata.resource_version

    # Entering the selector is an ADDED, leaving it a DELETED, changes inside it MODIFIED.
    merge.patch_namespaced_config_map("sel", namespace, {"metadata": {"labels": {"stage": "prod"}}})
    merge.patch_namespaced_config_map("sel", namespace, {"data": {"x": "1"}})
    merge.patch_namespaced_config_map("sel", namespace, {"metadata": {"labels": {"stage": "dev"}}})

    w = watch.Watch()
    try:
        events = collect(
            w.stream(
                core.list_namespaced_config_map,
                namespace,
                label_selector="stage=prod",
                resource_version=rv,
                timeout_seconds=10,
            ),
            until=lambda evs: evs[-1]["type"] == "DELETED",
        )
    finally:
        w.stop()
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"], summary(events)
    assert events[0]["object"].metadata.labels == {"stage": "prod"}
    assert events[1]["object"].data == {"x": "1"}


def test_bookmark_before_timeout(core, namespace):
    listed = core.list_namespaced_config_map(namespace)
    rv = int(listed.metadata.resource_version)

    start = time.monotonic()
    arrivals = []
    events = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=str(rv),
        allow_watch_bookmarks=True,
        timeout_seconds=4,
    ):
        events.append(event)
        arrivals.append(time.monotonic() - start)
    elapsed = time.monotonic() - start

    # The server ends the watch at timeoutSeconds (the client then returns, as it was given
    # a timeout) and sends a bookmark about 2 s before that.
    assert 3.0 <= elapsed <= 8.0, elapsed
    bookmarks = [(e, t) for e, t in zip(events, arrivals) if e["type"] == "BOOKMARK"]
    assert bookmarks, f"no BOOKMARK within timeoutSeconds=4: {summary(events)}"
    assert [e["type"] for e in events] == ["BOOKMARK"] * len(events), summary(events)
    bookmark, at = bookmarks[0]
    assert at < elapsed - 0.5, (at, elapsed)
    obj = bookmark["raw_object"]
    # A bookmark carries only the kind and a resourceVersion.
    assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1", obj
    assert int(obj["metadata"]["resourceVersion"]) >= rv, obj
    assert "name" not in obj["metadata"] and "data" not in obj, obj
