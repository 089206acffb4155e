"""The floor under the 2-node Docker job: what Docker itself takes for the same shape.

In one process, with the docker SDK already imported (its import is not timed):
with NETWORK ``job``, create a network and two containers of the base image
running ``true`` on it; with ``host``, the two containers on the host's network
(node names in /etc/hosts, as nemo_run_k8s gives them). Then start both (in
parallel), wait for both, remove both (in parallel). A network's removal is not
timed (nemo_run_k8s does it after the result). No code of ours runs; a tool
starting a 2-node job this way cannot finish sooner.

Usage: python docker_floor.py BASE_IMAGE N [NETWORK]   (NETWORK: job, the default, or host)
Prints one JSON line: {"samples": [...]}.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import docker

LABELS = {"app.kubernetes.io/managed-by": "nemo-run-k8s", "nemo-run-k8s.io/bench": "floor"}


def in_parallel(fn, items) -> None:  # type: ignore[no-untyped-def]
    threads = [threading.Thread(target=fn, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def one(api, image: str, i: int, network: str) -> float:  # type: ignore[no-untyped-def]
    name = f"nrk-bench-floor-{os.getpid()}-{i}"
    nodes = [f"{name}-{node}" for node in range(2)]
    start = time.perf_counter()
    if network == "job":
        network_id = api.create_network(name, driver="bridge", labels=LABELS)["Id"]
        configs = [
            {
                "host_config": api.create_host_config(network_mode=name, init=True),
                "networking_config": api.create_networking_config(
                    {name: api.create_endpoint_config(aliases=[node])}
                ),
            }
            for node in nodes
        ]
    else:
        network_id = None
        hosts = dict.fromkeys(nodes, "127.0.0.1")
        config = api.create_host_config(network_mode="host", init=True, extra_hosts=hosts)
        configs = [{"host_config": config, "hostname": node} for node in nodes]
    ids = [
        api.create_container(image, command=["true"], name=node, labels=LABELS, **config)["Id"]
        for node, config in zip(nodes, configs, strict=True)
    ]
    in_parallel(api.start, ids)
    in_parallel(api.wait, ids)
    in_parallel(lambda cid: api.remove_container(cid, force=True), ids)
    elapsed = time.perf_counter() - start
    if network_id:
        api.remove_network(network_id)
    return elapsed


def main() -> None:
    image, n = sys.argv[1], int(sys.argv[2])
    network = sys.argv[3] if len(sys.argv) > 3 else "job"
    api = docker.from_env().api
    samples = [one(api, image, i, network) for i in range(n + 1)][1:]  # the first is not counted
    print(json.dumps({"samples": samples}))


if __name__ == "__main__":
    main()
