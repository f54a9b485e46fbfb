"""Fixtures for the Rudder end-to-end suite: the client configuration from `KUBECONFIG`, an
ApiClient, and one fresh namespace per test module."""

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

import support


@pytest.fixture(scope="session")
def configuration():
    return support.load_configuration()


@pytest.fixture(scope="session")
def api_client(configuration):
    with client.ApiClient(configuration) as c:
        yield c


@pytest.fixture(scope="session")
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps(api_client):
    return client.AppsV1Api(api_client)


@pytest.fixture(scope="module")
def namespace(request, api_client):
    """A namespace of its own for every test module, deleted afterwards."""
    short = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    name = support.unique_name(f"py-{short}"[:40])
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name, _preload_content=False)
    except ApiException as e:
        if e.status != 404:
            raise
