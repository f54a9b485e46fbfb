"""Typed CRUD with CoreV1Api: namespaces, configmaps, secrets, pods and services, checking the
fields the server owns or defaults, as upstream fills them."""

import base64
import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

import support


def meta(name, **labels):
    return client.V1ObjectMeta(name=name, labels=labels or None)


@pytest.fixture(scope="module")
def core_merge(configuration):
    """CoreV1Api whose patches are JSON merge patches."""
    return client.CoreV1Api(support.patch_client(configuration, support.MERGE_PATCH))


def assert_server_metadata(obj, namespace=None):
    m = obj.metadata
    assert m.uid and len(m.uid) == 36, m
    assert m.resource_version and m.resource_version.isdigit(), m
    assert m.creation_timestamp is not None, m
    assert m.namespace == namespace, m


def test_namespace_lifecycle(core, core_merge):
    name = support.unique_name("py-ns")
    created = core.create_namespace(client.V1Namespace(metadata=meta(name, team="a")))
    assert created.kind == "Namespace" and created.api_version == "v1"
    assert_server_metadata(created)
    assert created.metadata.labels == {"team": "a", "kubernetes.io/metadata.name": name}
    assert created.spec.finalizers == ["kubernetes"]
    assert created.status.phase == "Active"

    read = core.read_namespace(name)
    assert read.metadata.uid == created.metadata.uid
    listed = core.list_namespace(label_selector="team=a")
    assert name in [n.metadata.name for n in listed.items]
    assert listed.metadata.resource_version.isdigit()

    patched = core_merge.patch_namespace(name, {"metadata": {"labels": {"team": "b"}}})
    assert patched.metadata.labels["team"] == "b"
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    assert name not in [n.metadata.name for n in core.list_namespace(label_selector="team=a").items]

    # Deleting a namespace starts its termination: it stays, Terminating, until it is empty
    # and its finalizer is gone; the DELETE answers with the namespace itself.
    resp = core.delete_namespace(name, _preload_content=False)
    deleted = json.loads(resp.data)
    assert resp.status == 200, deleted
    assert deleted["kind"] == "Namespace", deleted
    assert deleted["metadata"]["deletionTimestamp"], deleted
    terminating = core.read_namespace(name)
    assert terminating.status.phase == "Terminating"
    assert terminating.metadata.deletion_timestamp is not None


def test_configmap_crud(core, core_merge, namespace):
    cm = client.V1ConfigMap(metadata=meta("settings", app="py"), data={"color": "blue"})
    created = core.create_namespaced_config_map(namespace, cm)
    assert created.kind == "ConfigMap"
    assert_server_metadata(created, namespace)
    assert created.data == {"color": "blue"}

    read = core.read_namespaced_config_map("settings", namespace)
    assert read.metadata.resource_version == created.metadata.resource_version
    assert read.data == {"color": "blue"}
    listed = core.list_namespaced_config_map(namespace, label_selector="app=py")
    assert [c.metadata.name for c in listed.items] == ["settings"]
    assert core.list_namespaced_config_map(namespace, label_selector="app=other").items == []
    everywhere = core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={namespace}")
    assert [c.metadata.name for c in everywhere.items] == ["settings"]

    read.data["size"] = "xl"
    replaced = core.replace_namespaced_config_map("settings", namespace, read)
    assert replaced.data == {"color": "blue", "size": "xl"}
    assert int(replaced.metadata.resource_version) > int(read.metadata.resource_version)
    assert replaced.metadata.uid == created.metadata.uid

    patched = core_merge.patch_namespaced_config_map(
        "settings", namespace, {"data": {"color": None, "shape": "round"}}
    )
    assert patched.data == {"size": "xl", "shape": "round"}

    status = core.delete_namespaced_config_map("settings", namespace)
    # An object removed at once is answered with a Success Status naming it.
    assert status.kind == "Status" and status.status == "Success", status
    assert status.details.name == "settings" and status.details.kind == "configmaps", status
    assert status.details.uid == created.metadata.uid, status
    support.expect_status(lambda: core.read_namespaced_config_map("settings", namespace), 404, "NotFound")


def test_secret_crud(core, namespace):
    secret = client.V1Secret(
        metadata=meta("creds"),
        string_data={"user": "admin"},
        data={"password": base64.b64encode(b"s3cret").decode()},
    )
    created = core.create_namespaced_secret(namespace, secret)
    assert created.type == "Opaque"
    # stringData is write-only: it is merged into data, base64-encoded.
    assert created.string_data is None
    assert created.data == {
        "user": base64.b64encode(b"admin").decode(),
        "password": base64.b64encode(b"s3cret").decode(),
    }
    read = core.read_namespaced_secret("creds", namespace)
    assert read.data == created.data

    read.data = {"token": base64.b64encode(b"t0k3n").decode()}
    replaced = core.replace_namespaced_secret("creds", namespace, read)
    assert replaced.data == {"token": base64.b64encode(b"t0k3n").decode()}

    # The type of a secret cannot change.
    replaced.type = "kubernetes.io/tls"
    body = support.expect_status(lambda: core.replace_namespaced_secret("creds", namespace, replaced), 422, "Invalid")
    assert "type" in [c.get("field") for c in body["details"].get("causes", [])], body

    core.delete_namespaced_secret("creds", namespace)
    support.expect_status(lambda: core.read_namespaced_secret("creds", namespace), 404, "NotFound")


def test_pod_crud(core, core_merge, namespace):
    pod = client.V1Pod(
        metadata=meta("web-0", app="web"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox:1.36")]),
    )
    created = core.create_namespaced_pod(namespace, pod)
    assert_server_metadata(created, namespace)
    # Upstream defaulting of pods and containers.
    spec = created.spec
    assert spec.restart_policy == "Always"
    assert spec.dns_policy == "ClusterFirst"
    assert spec.termination_grace_period_seconds == 30
    assert spec.scheduler_name == "default-scheduler"
    assert spec.security_context is not None
    c = spec.containers[0]
    assert c.image_pull_policy == "IfNotPresent"
    assert c.termination_message_path == "/dev/termination-log"
    assert c.termination_message_policy == "File"
    assert created.status.phase == "Pending"
    assert created.status.qos_class == "BestEffort"

    listed = core.list_namespaced_pod(namespace, label_selector="app=web")
    assert [p.metadata.name for p in listed.items] == ["web-0"]

    patched = core_merge.patch_namespaced_pod("web-0", namespace, {"metadata": {"labels": {"tier": "front"}}})
    assert patched.metadata.labels == {"app": "web", "tier": "front"}
    assert core.read_namespaced_pod_status("web-0", namespace).status.phase == "Pending"

    # Pods answer DELETE with the pod; one never scheduled goes at once.
    deleted = core.delete_namespaced_pod("web-0", namespace)
    assert deleted.kind == "Pod" and deleted.metadata.name == "web-0", deleted
    assert deleted.metadata.uid == created.metadata.uid
    support.expect_status(lambda: core.read_namespaced_pod("web-0", namespace), 404, "NotFound")


def test_service_crud(core, core_merge, namespace):
    svc = client.V1Service(
        metadata=meta("web"),
        spec=client.V1ServiceSpec(
            selector={"app": "web"},
            ports=[client.V1ServicePort(name="http", port=80, target_port=8080)],
        ),
    )
    created = core.create_namespaced_service(namespace, svc)
    assert_server_metadata(created, namespace)
    spec = created.spec
    assert spec.type == "ClusterIP"
    assert spec.session_affinity == "None"
    assert spec.ports[0].protocol == "TCP"
    assert spec.ports[0].target_port == 8080
    assert spec.internal_traffic_policy == "Cluster"
    assert spec.selector == {"app": "web"}

    read = core.read_namespaced_service("web", namespace)
    read.spec.ports.append(client.V1ServicePort(name="metrics", port=9090))
    replaced = core.replace_namespaced_service("web", namespace, read)
    ports = {p.name: p for p in replaced.spec.ports}
    assert set(ports) == {"http", "metrics"}
    # targetPort defaults to the port.
    assert ports["metrics"].target_port == 9090

    patched = core_merge.patch_namespaced_service("web", namespace, {"metadata": {"annotations": {"a": "b"}}})
    assert patched.metadata.annotations == {"a": "b"}
    assert [s.metadata.name for s in core.list_namespaced_service(namespace).items] == ["web"]

    core.delete_namespaced_service("web", namespace)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_service("web", namespace)
    assert e.value.status == 404


def test_service_gets_a_cluster_ip(core, namespace):
    # Upstream allocates a cluster IP from the service CIDR for every ClusterIP service and
    # fills the dual-stack fields to match.
    svc = client.V1Service(
        metadata=meta("alloc"),
        spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(port=80)]),
    )
    created = core.create_namespaced_service(namespace, svc)
    try:
        ip = created.spec.cluster_ip
        assert ip and ip != "None" and ip.count(".") == 3, created.spec
        assert created.spec.cluster_i_ps == [ip], created.spec
        assert created.spec.ip_families == ["IPv4"], created.spec
        assert created.spec.ip_family_policy == "SingleStack", created.spec
    finally:
        core.delete_namespaced_service("alloc", namespace)
