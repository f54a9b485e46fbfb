"""Pods on a node with real containers, through the official client: phase and pod IP, logs,
and exec over the client's WebSocket streaming (v4.channel.k8s.io) with exit codes. Runs only
when the suite is started against a server with a node agent (RUDDER_NODE_TESTS=1)."""

import os
import time

import pytest
from kubernetes import client
from kubernetes.stream import stream

pytestmark = pytest.mark.skipif(
    os.environ.get("RUDDER_NODE_TESTS") != "1", reason="needs a node running real containers"
)


def wait_running(core, namespace, name, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        pod = core.read_namespaced_pod(name, namespace)
        if pod.status.phase == "Running":
            return pod
        time.sleep(0.3)
    raise AssertionError(f"pod {namespace}/{name} is not Running after {timeout}s: {pod.status}")


def test_pod_runs_and_answers_logs_and_exec(core, namespace):
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-pod"),
        spec=client.V1PodSpec(
            termination_grace_period_seconds=1,
            containers=[
                client.V1Container(
                    name="c",
                    image="busybox:latest",
                    image_pull_policy="IfNotPresent",
                    command=["sh", "-c", "echo from python; sleep 3600"],
                )
            ],
        ),
    )
    core.create_namespaced_pod(namespace, pod)
    running = wait_running(core, namespace, "py-pod")
    assert running.status.pod_ip
    assert running.status.container_statuses[0].container_id.startswith("containerd://")

    logs = ""
    for _ in range(30):
        logs = core.read_namespaced_pod_log("py-pod", namespace)
        if logs:
            break
        time.sleep(0.2)
    assert logs == "from python\n"

    out = stream(
        core.connect_get_namespaced_pod_exec,
        "py-pod",
        namespace,
        command=["sh", "-c", "echo exec-out"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert out.strip() == "exec-out"

    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "py-pod",
        namespace,
        command=["sh", "-c", "echo to-stderr >&2; exit 5"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=20)
    assert "to-stderr" in resp.read_stderr()
    assert resp.returncode == 5
