"""Errors come back as metav1.Status bodies with upstream's code, reason, message and details,
as the client surfaces them in ApiException."""

import pytest
from kubernetes import client

import support


def details_of(body):
    """`details` without empty fields: upstream omits them (omitempty), and a client reading
    an empty string or a missing key sees the same thing."""
    return {k: v for k, v in body.get("details", {}).items() if v not in ("", None, [], {})}


@pytest.fixture(scope="module")
def configmap(core, namespace):
    return core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="present"), data={"k": "v"})
    )


def test_404_not_found(core, apps, namespace):
    body = support.expect_status(lambda: core.read_namespaced_config_map("missing", namespace), 404, "NotFound")
    assert body["message"] == 'configmaps "missing" not found', body
    assert details_of(body) == {"name": "missing", "kind": "configmaps"}, body

    body = support.expect_status(lambda: apps.read_namespaced_deployment("missing", namespace), 404, "NotFound")
    assert body["message"] == 'deployments.apps "missing" not found', body
    assert details_of(body) == {"name": "missing", "group": "apps", "kind": "deployments"}, body

    # Writes into a namespace that does not exist name the namespace.
    gone = support.unique_name("py-absent")
    body = support.expect_status(
        lambda: core.create_namespaced_config_map(gone, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))),
        404,
        "NotFound",
    )
    assert body["message"] == f'namespaces "{gone}" not found', body
    assert details_of(body) == {"name": gone, "kind": "namespaces"}, body


def test_409_already_exists(core, namespace, configmap):
    dup = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="present"))
    body = support.expect_status(lambda: core.create_namespaced_config_map(namespace, dup), 409, "AlreadyExists")
    assert body["message"] == 'configmaps "present" already exists', body
    assert details_of(body) == {"name": "present", "kind": "configmaps"}, body


def test_409_conflict_on_stale_replace(core, namespace, configmap):
    stale = core.read_namespaced_config_map("present", namespace)
    fresh = core.read_namespaced_config_map("present", namespace)
    fresh.data = {"k": "newer"}
    core.replace_namespaced_config_map("present", namespace, fresh)

    stale.data = {"k": "older"}
    body = support.expect_status(lambda: core.replace_namespaced_config_map("present", namespace, stale), 409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "present": the object has been modified; '
        "please apply your changes to the latest version and try again"
    ), body
    assert details_of(body) == {"name": "present", "kind": "configmaps"}, body
    assert core.read_namespaced_config_map("present", namespace).data == {"k": "newer"}


def test_422_invalid_with_field_causes(core, apps, namespace):
    bad = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Not_Valid"))
    body = support.expect_status(lambda: core.create_namespaced_config_map(namespace, bad), 422, "Invalid")
    assert body["message"].startswith('ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid"'), body
    details = body["details"]
    assert (details["name"], details["kind"], details.get("group", "")) == ("Not_Valid", "ConfigMap", ""), details
    causes = details["causes"]
    assert [(c["reason"], c["field"]) for c in causes] == [("FieldValueInvalid", "metadata.name")], causes
    assert causes[0]["message"].startswith('Invalid value: "Not_Valid"'), causes

    # A deployment whose selector does not match its template: cause on the template labels.
    labels = {"app": "a"}
    d = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="mismatch"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "b"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")]),
            ),
        ),
    )
    body = support.expect_status(lambda: apps.create_namespaced_deployment(namespace, d), 422, "Invalid")
    details = body["details"]
    assert (details["name"], details["group"], details["kind"]) == ("mismatch", "apps", "Deployment"), details
    fields = [c["field"] for c in details["causes"]]
    assert "spec.template.metadata.labels" in fields, details


def test_422_failed_json_patch_test_op(configuration, namespace, configmap):
    patcher = client.CoreV1Api(support.patch_client(configuration, support.JSON_PATCH))
    ops = [{"op": "test", "path": "/data/k", "value": "something else"}]
    support.expect_status(lambda: patcher.patch_namespaced_config_map("present", namespace, ops), 422, "Invalid")


def test_400_bad_request(api_client, core, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    resp = support.send_raw(api_client, "POST", path, body=b'{"metadata": {"name": ', content_type="application/json")
    support.expect_raw_status(resp, 400, "BadRequest")

    # A body of another kind cannot be handled as the resource's kind.
    wrong = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    body = support.expect_status(lambda: core.create_namespaced_config_map(namespace, wrong), 400, "BadRequest")
    assert "cannot be handled as a ConfigMap" in body["message"], body

    # A JSON patch that is not a list of operations.
    resp = support.send_raw(
        api_client, "PATCH", f"{path}/anything", body=b'{"op": "add"}', content_type=support.JSON_PATCH
    )
    support.expect_raw_status(resp, 400, "BadRequest")

    # An unknown value of a query parameter.
    resp = support.send_raw(api_client, "GET", path, query=[("limit", "ten")])
    support.expect_raw_status(resp, 400, "BadRequest")


def test_405_method_not_allowed(api_client, namespace):
    # POST goes to collections; a named pod path does not take it.
    resp = support.send_raw(
        api_client, "POST", f"/api/v1/namespaces/{namespace}/pods/web", body=b"{}", content_type="application/json"
    )
    body = support.expect_raw_status(resp, 405, "MethodNotAllowed")
    assert body["message"] == "the server does not allow this method on the requested resource", body

    # PUT replaces one object; a collection does not take it.
    resp = support.send_raw(
        api_client, "PUT", f"/api/v1/namespaces/{namespace}/configmaps", body=b"{}", content_type="application/json"
    )
    support.expect_raw_status(resp, 405, "MethodNotAllowed")


def test_415_unsupported_media_type(configuration, api_client, namespace, configmap):
    # The client sends a str body as it is when the Content-Type is not JSON.
    patcher = client.CoreV1Api(support.patch_client(configuration, "text/plain"))
    body = support.expect_status(
        lambda: patcher.patch_namespaced_config_map("present", namespace, '{"data": {"k": "x"}}'),
        415,
        "UnsupportedMediaType",
    )
    assert body["message"].startswith("the body of the request was in an unknown format - accepted media types include:"), body
    # (strategic merge patch is checked by the tests that use it)
    for accepted in (support.JSON_PATCH, support.MERGE_PATCH):
        assert accepted in body["message"], body

    resp = support.send_raw(
        api_client,
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        body=b'{"metadata": {"name": "plain"}}',
        content_type="text/plain",
    )
    body = support.expect_raw_status(resp, 415, "UnsupportedMediaType")
    assert "application/json" in body["message"], body
