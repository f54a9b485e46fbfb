"""Discovery: the legacy documents the typed client reads (`/api`, `/apis`, `/api/v1`,
`/apis/apps/v1`) and aggregated discovery (apidiscovery.k8s.io/v2) as client-go asks for it."""

from kubernetes import client

import support

CRUD_VERBS = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

# Groups of the built-in catalog of Kubernetes 1.32 that Rudder serves.
EXPECTED_GROUPS = {
    "apps": ["v1"],
    "batch": ["v1"],
    "autoscaling": ["v2", "v1"],
    "policy": ["v1"],
    "networking.k8s.io": ["v1"],
    "discovery.k8s.io": ["v1"],
    "coordination.k8s.io": ["v1"],
    "rbac.authorization.k8s.io": ["v1"],
    "storage.k8s.io": ["v1"],
    "scheduling.k8s.io": ["v1"],
    "events.k8s.io": ["v1"],
    "node.k8s.io": ["v1"],
    "certificates.k8s.io": ["v1"],
    "admissionregistration.k8s.io": ["v1"],
}


def by_name(items, key="name"):
    return {getattr(i, key) if not isinstance(i, dict) else i[key]: i for i in items}


def test_legacy_api_versions(api_client):
    # The typed model rejects an APIVersions without serverAddressByClientCIDRs, so this call
    # alone proves the field is there.
    versions = client.CoreApi(api_client).get_api_versions()
    assert versions.kind == "APIVersions"
    assert versions.versions == ["v1"]
    cidrs = versions.server_address_by_client_cid_rs
    assert cidrs, versions
    assert cidrs[0].client_cidr == "0.0.0.0/0", cidrs
    host, _, port = cidrs[0].server_address.rpartition(":")
    assert host and port.isdigit(), cidrs


def test_legacy_group_list(api_client):
    groups = client.ApisApi(api_client).get_api_versions()
    assert groups.kind == "APIGroupList"
    served = by_name(groups.groups)
    assert "" not in served and "v1" not in served, "the core group is served at /api, not /apis"
    for name, versions in EXPECTED_GROUPS.items():
        assert name in served, f"group {name} missing from /apis: {sorted(served)}"
        group = served[name]
        assert [v.version for v in group.versions] == versions, group
        assert [v.group_version for v in group.versions] == [f"{name}/{v}" for v in versions], group
        # The first listed version is the preferred one.
        assert group.preferred_version.group_version == f"{name}/{versions[0]}", group
        assert group.preferred_version.version == versions[0], group


def test_legacy_core_resources(api_client):
    resources = client.CoreV1Api(api_client).get_api_resources()
    assert resources.kind == "APIResourceList"
    assert resources.group_version == "v1"
    r = by_name(resources.resources)

    pods = r["pods"]
    assert (pods.kind, pods.singular_name, pods.namespaced) == ("Pod", "pod", True)
    assert pods.short_names == ["po"]
    assert set(pods.verbs) == CRUD_VERBS
    assert set(r["pods/status"].verbs) == {"get", "patch", "update"}
    assert r["pods/status"].kind == "Pod"
    assert r["pods/binding"].verbs == ["create"]
    assert r["pods/binding"].kind == "Binding"

    ns = r["namespaces"]
    assert (ns.kind, ns.singular_name, ns.namespaced) == ("Namespace", "namespace", False)
    assert ns.short_names == ["ns"]
    # Namespaces have no deletecollection upstream.
    assert set(ns.verbs) == CRUD_VERBS - {"deletecollection"}

    for name, kind, short in [
        ("configmaps", "ConfigMap", ["cm"]),
        ("secrets", "Secret", None),
        ("services", "Service", ["svc"]),
    ]:
        assert r[name].kind == kind and r[name].namespaced, r[name]
        assert r[name].short_names == short, r[name]


def test_legacy_apps_resources(api_client):
    resources = client.AppsV1Api(api_client).get_api_resources()
    assert resources.group_version == "apps/v1"
    r = by_name(resources.resources)
    deploy = r["deployments"]
    assert (deploy.kind, deploy.singular_name, deploy.namespaced) == ("Deployment", "deployment", True)
    assert deploy.short_names == ["deploy"]
    assert set(deploy.verbs) == CRUD_VERBS
    assert "all" in (deploy.categories or []), deploy
    scale = r["deployments/scale"]
    # The scale subresource answers with autoscaling/v1 Scale.
    assert (scale.group, scale.version, scale.kind) == ("autoscaling", "v1", "Scale"), scale
    assert set(scale.verbs) == {"get", "patch", "update"}


def assert_response_kind(resource, group, version, kind):
    """A resource's responseKind: upstream leaves group and version empty unless the storage
    names another group version (as scale does), and clients then take the enclosing one."""
    rk = resource["responseKind"]
    assert rk["kind"] == kind, resource
    assert (rk.get("group", ""), rk.get("version", "")) in {("", ""), (group, version)}, resource


def aggregated(api_client, path):
    resp = support.call_raw(api_client, path, support.AGGREGATED_V2)
    assert resp.status == 200, resp
    media, params = support.media_params(resp.content_type)
    assert media == "application/json", resp
    # client-go uses the aggregated form only when the answer says it is one.
    assert params.get("g") == "apidiscovery.k8s.io", resp.content_type
    assert params.get("v") == "v2", resp.content_type
    assert params.get("as") == "APIGroupDiscoveryList", resp.content_type
    body = resp.json()
    assert body["apiVersion"] == "apidiscovery.k8s.io/v2", body.get("apiVersion")
    assert body["kind"] == "APIGroupDiscoveryList", body.get("kind")
    assert isinstance(body["items"], list) and body["items"], body
    return body


def test_aggregated_discovery_apis(api_client):
    body = aggregated(api_client, "/apis")
    groups = {g["metadata"].get("name", ""): g for g in body["items"]}
    assert "" not in groups, "the core group belongs to /api"
    for name, versions in EXPECTED_GROUPS.items():
        assert name in groups, f"group {name} missing: {sorted(groups)}"
        # Versions in preference order.
        assert [v["version"] for v in groups[name]["versions"]] == versions, groups[name]
        for v in groups[name]["versions"]:
            assert v.get("freshness", "Current") == "Current", v

    apps_v1 = groups["apps"]["versions"][0]
    resources = {r["resource"]: r for r in apps_v1["resources"]}
    deploy = resources["deployments"]
    assert deploy["scope"] == "Namespaced", deploy
    assert deploy["singularResource"] == "deployment", deploy
    assert_response_kind(deploy, "apps", "v1", "Deployment")
    assert set(deploy["verbs"]) == CRUD_VERBS, deploy
    assert deploy.get("shortNames") == ["deploy"], deploy
    # Subresources live inside their parent, never as resources of their own.
    assert "deployments/scale" not in resources and "deployments/status" not in resources
    subs = {s["subresource"]: s for s in deploy.get("subresources", [])}
    assert subs["scale"]["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}, subs
    assert set(subs["scale"]["verbs"]) == {"get", "patch", "update"}, subs
    assert subs["status"]["responseKind"]["kind"] == "Deployment", subs

    rbac = {r["resource"]: r for r in groups["rbac.authorization.k8s.io"]["versions"][0]["resources"]}
    assert rbac["clusterroles"]["scope"] == "Cluster", rbac["clusterroles"]


def test_aggregated_discovery_core(api_client):
    body = aggregated(api_client, "/api")
    assert len(body["items"]) == 1, [g["metadata"] for g in body["items"]]
    core = body["items"][0]
    assert core["metadata"].get("name", "") == "", core["metadata"]
    assert [v["version"] for v in core["versions"]] == ["v1"]
    resources = {r["resource"]: r for r in core["versions"][0]["resources"]}
    assert resources["pods"]["scope"] == "Namespaced"
    assert_response_kind(resources["pods"], "", "v1", "Pod")
    assert resources["pods"]["shortNames"] == ["po"]
    assert resources["namespaces"]["scope"] == "Cluster"
    assert resources["configmaps"]["shortNames"] == ["cm"]
    pod_subs = {s["subresource"] for s in resources["pods"].get("subresources", [])}
    assert {"status", "binding"} <= pod_subs, pod_subs


def test_plain_json_accept_still_gets_legacy_discovery(api_client):
    # A client that does not ask for the aggregated form (the Python client itself) must keep
    # getting APIGroupList / APIVersions.
    resp = support.call_raw(api_client, "/apis", "application/json")
    assert resp.status == 200, resp
    assert resp.json()["kind"] == "APIGroupList", resp
    resp = support.call_raw(api_client, "/api", "application/json")
    assert resp.status == 200, resp
    assert resp.json()["kind"] == "APIVersions", resp
