"""`kubernetes.dynamic.DynamicClient`: resource lookup from discovery, then create / get /
list / patch / replace / delete through the untyped interface, for apps/v1 Deployment and for
built-in kinds that need no CustomResourceDefinition (core ConfigMap, cluster-scoped RBAC
ClusterRole)."""

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

import support


@pytest.fixture(scope="module")
def dyn(api_client, tmp_path_factory):
    # A private discovery cache, so nothing from another server (or run) is reused.
    cache = tmp_path_factory.mktemp("dynamic") / "discovery.json"
    return DynamicClient(api_client, cache_file=str(cache))


def test_resource_lookup(dyn):
    deploy = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert (deploy.group, deploy.api_version, deploy.name) == ("apps", "v1", "deployments")
    assert deploy.namespaced is True
    assert "patch" in deploy.verbs and "watch" in deploy.verbs
    assert set(deploy.subresources) >= {"scale", "status"}, deploy.subresources
    assert deploy.subresources["scale"].kind == "Scale"

    ns = dyn.resources.get(api_version="v1", kind="Namespace")
    assert ns.namespaced is False and ns.name == "namespaces"
    assert dyn.resources.get(api_version="v1", kind="ConfigMap").namespaced is True
    assert dyn.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="ClusterRole").namespaced is False


def test_deployment_round_trip(dyn, namespace):
    api = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "dyn-web", "labels": {"app": "dyn-web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "dyn-web"}},
            "template": {
                "metadata": {"labels": {"app": "dyn-web"}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.26"}]},
            },
        },
    }
    created = api.create(body=body, namespace=namespace)
    assert created.kind == "Deployment"
    assert created.metadata.name == "dyn-web" and created.metadata.namespace == namespace
    assert created.spec.strategy.type == "RollingUpdate"

    got = api.get(name="dyn-web", namespace=namespace)
    assert got.metadata.uid == created.metadata.uid
    assert got.spec.replicas == 1

    listed = api.get(namespace=namespace, label_selector="app=dyn-web")
    assert listed.kind == "DeploymentList"
    assert [i.metadata.name for i in listed.items] == ["dyn-web"]

    patched = api.patch(
        body={"spec": {"replicas": 3}},
        name="dyn-web",
        namespace=namespace,
        content_type=support.MERGE_PATCH,
    )
    assert patched.spec.replicas == 3
    assert patched.metadata.generation == 2

    patched = api.patch(
        body=[{"op": "add", "path": "/metadata/annotations", "value": {"via": "dynamic"}}],
        name="dyn-web",
        namespace=namespace,
        content_type=support.JSON_PATCH,
    )
    assert patched.metadata.annotations.via == "dynamic"

    scale = api.subresources["scale"]
    current = scale.get(name="dyn-web", namespace=namespace)
    assert current.kind == "Scale" and current.spec.replicas == 3
    scaled = scale.patch(
        body={"spec": {"replicas": 2}}, name="dyn-web", namespace=namespace, content_type=support.MERGE_PATCH
    )
    assert scaled.spec.replicas == 2
    assert api.get(name="dyn-web", namespace=namespace).spec.replicas == 2

    status = api.delete(name="dyn-web", namespace=namespace)
    assert status.kind == "Status" and status.status == "Success", status
    with pytest.raises(NotFoundError) as e:
        api.get(name="dyn-web", namespace=namespace)
    assert e.value.status == 404


def test_configmap_round_trip(dyn, namespace):
    api = dyn.resources.get(api_version="v1", kind="ConfigMap")
    created = api.create(
        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dyn-cm"}, "data": {"a": "1"}},
        namespace=namespace,
    )
    assert created.data.a == "1"

    obj = api.get(name="dyn-cm", namespace=namespace).to_dict()
    obj["data"]["b"] = "2"
    replaced = api.replace(body=obj, namespace=namespace)
    assert replaced.data.to_dict() == {"a": "1", "b": "2"}

    # Replacing with the old resourceVersion again is a conflict.
    with pytest.raises(ConflictError) as e:
        api.replace(body=obj, namespace=namespace)
    assert e.value.status == 409

    patched = api.patch(body={"data": {"a": None}}, name="dyn-cm", namespace=namespace, content_type=support.MERGE_PATCH)
    assert patched.data.to_dict() == {"b": "2"}

    api.delete(name="dyn-cm", namespace=namespace)
    with pytest.raises(NotFoundError):
        api.get(name="dyn-cm", namespace=namespace)


def test_cluster_scoped_round_trip(dyn):
    api = dyn.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="ClusterRole")
    name = support.unique_name("py-dyn-role")
    created = api.create(
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        }
    )
    try:
        assert created.metadata.name == name
        assert created.metadata.namespace is None
        got = api.get(name=name)
        assert got.rules[0].verbs == ["get", "list"]
        assert name in [i.metadata.name for i in api.get().items]
    finally:
        api.delete(name=name)
    with pytest.raises(NotFoundError):
        api.get(name=name)
