"""List paging with `limit` and `continue`: 25 configmaps in pages of 10, remainingItemCount,
one snapshot across all pages, and a bad continue token."""

import pytest
from kubernetes import client

import support

NAMES = [f"cm-{i:02d}" for i in range(25)]


@pytest.fixture(scope="module")
def filled(core, namespace):
    for name in NAMES:
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"i": name})
        )
    return namespace


def test_pages_of_ten(core, filled):
    first = core.list_namespaced_config_map(filled, limit=10)
    assert [c.metadata.name for c in first.items] == NAMES[:10]
    assert first.metadata._continue, first.metadata
    assert first.metadata.remaining_item_count == 15
    rv = first.metadata.resource_version
    assert rv and rv.isdigit()

    second = core.list_namespaced_config_map(filled, limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in second.items] == NAMES[10:20]
    assert second.metadata._continue
    assert second.metadata.remaining_item_count == 5
    # Every page is read at the first page's revision.
    assert second.metadata.resource_version == rv

    third = core.list_namespaced_config_map(filled, limit=10, _continue=second.metadata._continue)
    assert [c.metadata.name for c in third.items] == NAMES[20:]
    assert not third.metadata._continue
    assert third.metadata.remaining_item_count is None
    assert third.metadata.resource_version == rv

    # Without a limit everything comes in one answer, with no continue token.
    whole = core.list_namespaced_config_map(filled)
    assert [c.metadata.name for c in whole.items] == NAMES
    assert not whole.metadata._continue and whole.metadata.remaining_item_count is None


def test_pages_are_one_snapshot(core, filled):
    first = core.list_namespaced_config_map(filled, limit=10)
    # Changes after the first page are not seen by later pages of the same list.
    core.create_namespaced_config_map(filled, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm-99")))
    core.delete_namespaced_config_map("cm-15", filled)
    try:
        rest = []
        token = first.metadata._continue
        while token:
            page = core.list_namespaced_config_map(filled, limit=10, _continue=token)
            rest += [c.metadata.name for c in page.items]
            token = page.metadata._continue
        assert [c.metadata.name for c in first.items] + rest == NAMES

        fresh = [c.metadata.name for c in core.list_namespaced_config_map(filled).items]
        assert "cm-99" in fresh and "cm-15" not in fresh
    finally:
        core.delete_namespaced_config_map("cm-99", filled)
        core.create_namespaced_config_map(filled, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm-15")))


def test_label_selected_pages(core, configuration, filled):
    # The selector applies before the limit: pages are full pages of matches.
    merge = client.CoreV1Api(support.patch_client(configuration, support.MERGE_PATCH))
    for name in NAMES[::5]:
        merge.patch_namespaced_config_map(name, filled, {"metadata": {"labels": {"fifth": "yes"}}})
    page = core.list_namespaced_config_map(filled, limit=3, label_selector="fifth=yes")
    assert [c.metadata.name for c in page.items] == NAMES[::5][:3]
    assert page.metadata._continue
    page = core.list_namespaced_config_map(filled, limit=3, label_selector="fifth=yes", _continue=page.metadata._continue)
    assert [c.metadata.name for c in page.items] == NAMES[::5][3:]
    assert not page.metadata._continue


def test_bad_continue_token(core, filled):
    body = support.expect_status(
        lambda: core.list_namespaced_config_map(filled, limit=10, _continue="not-a-token"), 400, "BadRequest"
    )
    assert "continue" in body["message"], body
