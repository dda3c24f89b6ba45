"""A two-node Ray cluster on 127.0.0.1 for tests: ``python tests/ray_cluster.py TEMP_DIR``.

Starts a head node (1 CPU) and a second node process joining it (1 CPU and a ``second_node``
resource), each a raylet of its own, prints the head's address on one line, and runs until
SIGTERM, when it ends the processes it started; SIGUSR1 kills the second node (a lost node). Ray's ``cluster_utils.Cluster`` starts the nodes
as ``ray start`` does, but with the node address given: the ``ray start --address`` command would
replace 127.0.0.1 by the machine's outward address, which it finds with a UDP probe of 8.8.8.8.
Run it with HOME holding a ``ray_bootstrap_config.yaml`` (no cloud metadata probe).
"""

import os
import signal
import sys
import threading

if __name__ == "__main__":
    temp = sys.argv[1]
    os.makedirs(os.path.join(temp, "ray"), exist_ok=True)
    os.environ["RAY_TMPDIR"] = temp  # Ray's own files (the current cluster's address too) stay in the test's folder
    from ray.cluster_utils import Cluster

    common = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}
    cluster = Cluster(initialize_head=True, shutdown_at_exit=True,
                      head_node_args={**common, "include_dashboard": False, "temp_dir": temp})
    second = cluster.add_node(**common, resources={"second_node": 1})
    term, lose = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: term.set())
    signal.signal(signal.SIGUSR1, lambda *_: lose.set())
    print(cluster.address, flush=True)
    while not term.wait(0.2):
        if lose.is_set() and second is not None:  # the second node is lost: killed, not drained
            cluster.remove_node(second, allow_graceful=False)
            second = None
            print("lost", flush=True)
    cluster.shutdown()
