"""AppsV1Api deployments: create with upstream defaults, replace, the three patch types (each
sent with an explicit Content-Type), the scale subresource, and delete."""

import pytest
from kubernetes import client

import support


def deployment(name, replicas=2):
    labels = {"app": name}
    container = client.V1Container(
        name="main",
        image="nginx:1.26",
        ports=[client.V1ContainerPort(container_port=80, name="http")],
        env=[client.V1EnvVar(name="MODE", value="prod")],
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container]),
            ),
        ),
    )


@pytest.fixture(scope="module")
def patcher(configuration):
    """AppsV1Api clients that send one patch media type each."""
    return {
        ct: client.AppsV1Api(support.patch_client(configuration, ct))
        for ct in (support.JSON_PATCH, support.MERGE_PATCH, support.STRATEGIC_PATCH)
    }


@pytest.fixture
def fresh(apps, namespace, request):
    """A new deployment named after the test, removed afterwards."""
    name = request.node.name.removeprefix("test_").replace("_", "-")[:40]
    created = apps.create_namespaced_deployment(namespace, deployment(name))
    yield created
    try:
        apps.delete_namespaced_deployment(name, namespace)
    except client.ApiException as e:
        assert e.status == 404, e


def containers(d):
    return {c.name: c for c in d.spec.template.spec.containers}


def test_create_defaults(fresh):
    d = fresh
    assert d.kind == "Deployment" and d.api_version == "apps/v1"
    assert d.metadata.generation == 1
    assert d.metadata.uid and d.metadata.resource_version.isdigit()
    assert d.spec.strategy.type == "RollingUpdate"
    assert d.spec.strategy.rolling_update.max_surge == "25%"
    assert d.spec.strategy.rolling_update.max_unavailable == "25%"
    assert d.spec.revision_history_limit == 10
    assert d.spec.progress_deadline_seconds == 600
    pod = d.spec.template.spec
    assert pod.restart_policy == "Always" and pod.dns_policy == "ClusterFirst"
    assert pod.containers[0].ports[0].protocol == "TCP"
    assert pod.containers[0].image_pull_policy == "IfNotPresent"


def test_read_list_and_replace(apps, namespace, fresh):
    name = fresh.metadata.name
    read = apps.read_namespaced_deployment(name, namespace)
    assert read.metadata.uid == fresh.metadata.uid
    listed = apps.list_namespaced_deployment(namespace, label_selector=f"app={name}")
    assert [d.metadata.name for d in listed.items] == [name]

    read.spec.replicas = 4
    read.spec.template.spec.containers[0].image = "nginx:1.27"
    replaced = apps.replace_namespaced_deployment(name, namespace, read)
    assert replaced.spec.replicas == 4
    assert replaced.spec.template.spec.containers[0].image == "nginx:1.27"
    # A spec change moves the generation on.
    assert replaced.metadata.generation == 2
    assert int(replaced.metadata.resource_version) > int(read.metadata.resource_version)

    # A metadata-only change does not.
    replaced.metadata.annotations = {"note": "x"}
    again = apps.replace_namespaced_deployment(name, namespace, replaced)
    assert again.metadata.generation == 2
    assert again.metadata.annotations == {"note": "x"}


def test_json_patch(patcher, namespace, fresh):
    name = fresh.metadata.name
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/annotations", "value": {"owner": "py"}},
        {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "main"},
    ]
    patched = patcher[support.JSON_PATCH].patch_namespaced_deployment(name, namespace, ops)
    assert patched.spec.replicas == 5
    assert patched.metadata.annotations == {"owner": "py"}
    assert patched.metadata.generation == 2


def test_merge_patch(patcher, apps, namespace, fresh):
    name = fresh.metadata.name
    merge = patcher[support.MERGE_PATCH]
    patched = merge.patch_namespaced_deployment(
        name, namespace, {"metadata": {"labels": {"tier": "web"}}, "spec": {"replicas": 3}}
    )
    # Maps merge: the existing label stays.
    assert patched.metadata.labels == {"app": name, "tier": "web"}
    assert patched.spec.replicas == 3

    # Lists are replaced whole: the container loses its ports and env.
    patched = merge.patch_namespaced_deployment(
        name,
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.28"}]}}}},
    )
    c = containers(patched)
    assert list(c) == ["main"]
    assert c["main"].image == "nginx:1.28"
    assert c["main"].ports is None and c["main"].env is None, c["main"]

    # null deletes a key.
    patched = merge.patch_namespaced_deployment(name, namespace, {"metadata": {"labels": {"tier": None}}})
    assert patched.metadata.labels == {"app": name}
    assert apps.read_namespaced_deployment(name, namespace).metadata.labels == {"app": name}


def test_strategic_merge_patch(patcher, namespace, fresh):
    name = fresh.metadata.name
    smp = patcher[support.STRATEGIC_PATCH]
    # Containers merge by name: only the image changes, ports and env stay.
    patched = smp.patch_namespaced_deployment(
        name,
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}},
    )
    c = containers(patched)
    assert list(c) == ["main"]
    assert c["main"].image == "nginx:1.27"
    assert [(p.name, p.container_port) for p in c["main"].ports] == [("http", 80)]
    assert [(e.name, e.value) for e in c["main"].env] == [("MODE", "prod")]
    assert patched.metadata.generation == 2

    # A container with a new name is added beside the existing one.
    patched = smp.patch_namespaced_deployment(
        name,
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.36"}]}}}},
    )
    c = containers(patched)
    assert set(c) == {"main", "sidecar"}
    assert c["main"].image == "nginx:1.27"

    # The $patch: delete directive removes one element by its merge key.
    patched = smp.patch_namespaced_deployment(
        name,
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}},
    )
    assert list(containers(patched)) == ["main"]


def test_default_patch_of_a_dict_is_strategic(apps, namespace, fresh):
    # Without a chosen media type, the client sends a dict body as a strategic merge patch
    # (the most common way Python code patches).
    name = fresh.metadata.name
    patched = apps.patch_namespaced_deployment(
        name,
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.29"}]}}}},
    )
    c = containers(patched)
    assert c["main"].image == "nginx:1.29"
    assert [p.container_port for p in c["main"].ports] == [80]


def test_scale_subresource(apps, patcher, namespace, fresh):
    name = fresh.metadata.name
    scale = apps.read_namespaced_deployment_scale(name, namespace)
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    assert scale.metadata.name == name and scale.metadata.namespace == namespace
    assert scale.metadata.uid == fresh.metadata.uid
    assert scale.metadata.resource_version == fresh.metadata.resource_version
    assert scale.spec.replicas == 2
    assert scale.status.replicas == 0
    assert scale.status.selector == f"app={name}"

    patched = patcher[support.MERGE_PATCH].patch_namespaced_deployment_scale(
        name, namespace, {"spec": {"replicas": 5}}
    )
    assert patched.kind == "Scale" and patched.spec.replicas == 5
    assert apps.read_namespaced_deployment(name, namespace).spec.replicas == 5

    patched = patcher[support.JSON_PATCH].patch_namespaced_deployment_scale(
        name, namespace, [{"op": "replace", "path": "/spec/replicas", "value": 6}]
    )
    assert patched.spec.replicas == 6

    current = apps.read_namespaced_deployment_scale(name, namespace)
    current.spec.replicas = 1
    replaced = apps.replace_namespaced_deployment_scale(name, namespace, current)
    assert replaced.spec.replicas == 1
    d = apps.read_namespaced_deployment(name, namespace)
    assert d.spec.replicas == 1
    assert d.metadata.generation == 4


def test_strategic_patch_of_scale(patcher, apps, namespace, fresh):
    name = fresh.metadata.name
    patched = patcher[support.STRATEGIC_PATCH].patch_namespaced_deployment_scale(
        name, namespace, {"spec": {"replicas": 7}}
    )
    assert patched.spec.replicas == 7
    assert apps.read_namespaced_deployment(name, namespace).spec.replicas == 7


def test_delete(apps, namespace):
    created = apps.create_namespaced_deployment(namespace, deployment("doomed"))
    status = apps.delete_namespaced_deployment("doomed", namespace)
    assert status.kind == "Status" and status.status == "Success", status
    assert status.details.name == "doomed", status
    assert (status.details.group, status.details.kind) == ("apps", "deployments"), status
    assert status.details.uid == created.metadata.uid, status
    body = support.expect_status(lambda: apps.read_namespaced_deployment("doomed", namespace), 404, "NotFound")
    details = body["details"]
    assert (details["name"], details["group"], details["kind"]) == ("doomed", "apps", "deployments"), body
