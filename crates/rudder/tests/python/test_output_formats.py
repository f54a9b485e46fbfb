"""Content negotiation of list and get output: meta.k8s.io/v1 Table (what `kubectl get` asks
for) and PartialObjectMetadata(List) (what metadata informers ask for)."""

import pytest
from kubernetes import client

import support


@pytest.fixture(scope="module")
def objects(core, namespace):
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one", labels={"n": "1"}), data={"a": "x"}),
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="two", labels={"n": "2"}), data={"a": "x", "b": "y"}),
    )
    return namespace


def test_table_list(api_client, objects):
    resp = support.call_raw(api_client, f"/api/v1/namespaces/{objects}/configmaps", support.TABLE_V1)
    assert resp.status == 200, resp
    table = resp.json()
    assert table["kind"] == "Table", table
    assert table["apiVersion"] == "meta.k8s.io/v1", table
    assert table["metadata"]["resourceVersion"].isdigit(), table["metadata"]

    columns = table["columnDefinitions"]
    # The columns kubectl prints for configmaps: NAME DATA AGE.
    assert [c["name"] for c in columns] == ["Name", "Data", "Age"], columns
    assert columns[0]["type"] == "string" and columns[0]["format"] == "name", columns[0]
    assert columns[1]["type"] == "string", columns[1]  # upstream declares it so; cells hold numbers
    for c in columns:
        assert "description" in c and "priority" in c, c

    rows = table["rows"]
    assert [r["cells"][0] for r in rows] == ["one", "two"], rows
    assert [r["cells"][1] for r in rows] == [1, 2], rows
    for r in rows:
        assert len(r["cells"]) == len(columns), r
        # By default each row carries the object's metadata (includeObject=Metadata).
        obj = r["object"]
        assert obj["kind"] == "PartialObjectMetadata" and obj["apiVersion"] == "meta.k8s.io/v1", obj
        assert obj["metadata"]["name"] == r["cells"][0], obj
        assert "data" not in obj, obj


def test_table_single_object_and_include_object(api_client, objects):
    resp = support.call_raw(api_client, f"/api/v1/namespaces/{objects}/configmaps/two", support.TABLE_V1)
    assert resp.status == 200, resp
    table = resp.json()
    assert table["kind"] == "Table", table
    assert [r["cells"][0] for r in table["rows"]] == ["two"], table

    # includeObject=Object embeds the whole object (kubectl --sort-by).
    resp = support.call_raw(
        api_client,
        f"/api/v1/namespaces/{objects}/configmaps",
        support.TABLE_V1,
        query=[("includeObject", "Object")],
    )
    assert resp.status == 200, resp
    rows = resp.json()["rows"]
    assert [r["object"]["kind"] for r in rows] == ["ConfigMap", "ConfigMap"], rows
    assert rows[1]["object"]["data"] == {"a": "x", "b": "y"}, rows


def test_table_of_deployments_has_its_columns(api_client, apps, namespace):
    labels = {"app": "tbl"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="tbl"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx:1.26")]),
                ),
            ),
        ),
    )
    resp = support.call_raw(api_client, f"/apis/apps/v1/namespaces/{namespace}/deployments", support.TABLE_V1)
    assert resp.status == 200, resp
    table = resp.json()
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:5] == ["Name", "Ready", "Up-to-date", "Available", "Age"], names
    # -o wide columns have priority 1.
    wide = {c["name"]: c["priority"] for c in table["columnDefinitions"] if c["priority"] > 0}
    assert {"Containers", "Images", "Selector"} <= set(wide), table["columnDefinitions"]
    row = table["rows"][0]
    assert row["cells"][0] == "tbl" and row["cells"][1] == "0/2", row


def test_metadata_only_list(api_client, objects):
    resp = support.call_raw(api_client, f"/api/v1/namespaces/{objects}/configmaps", support.METADATA_LIST_V1)
    assert resp.status == 200, resp
    body = resp.json()
    assert body["kind"] == "PartialObjectMetadataList", body
    assert body["apiVersion"] == "meta.k8s.io/v1", body
    assert body["metadata"]["resourceVersion"].isdigit(), body["metadata"]
    items = body["items"]
    assert [i["metadata"]["name"] for i in items] == ["one", "two"], items
    for item in items:
        assert item["kind"] == "PartialObjectMetadata" and item["apiVersion"] == "meta.k8s.io/v1", item
        assert set(item) == {"kind", "apiVersion", "metadata"}, item
        assert item["metadata"]["namespace"] == objects
        assert item["metadata"]["uid"] and item["metadata"]["resourceVersion"].isdigit(), item
    assert items[0]["metadata"]["labels"] == {"n": "1"}


def test_metadata_only_object(api_client, objects):
    resp = support.call_raw(api_client, f"/api/v1/namespaces/{objects}/configmaps/one", support.METADATA_V1)
    assert resp.status == 200, resp
    body = resp.json()
    assert body["kind"] == "PartialObjectMetadata" and body["apiVersion"] == "meta.k8s.io/v1", body
    assert set(body) == {"kind", "apiVersion", "metadata"}, body
    assert body["metadata"]["name"] == "one"


def test_unknown_output_kind_is_not_acceptable(api_client, objects):
    # Only an unservable media type offered: 406, not a silent JSON answer.
    resp = support.call_raw(
        api_client, f"/api/v1/namespaces/{objects}/configmaps", "application/json;as=Bogus;v=v1;g=meta.k8s.io"
    )
    support.expect_raw_status(resp, 406, "NotAcceptable")
