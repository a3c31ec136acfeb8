"""Names the lab shares with everything it creates, in one place.

Discovery and cleanup work from labels alone (as containerlab does), never
from names or from the process that created a resource: a lab left behind by
a killed runner is found and removed by ``invoke clean`` all the same. Every
lab also carries its owner (``owner()``), so that ``invoke down`` removes
only the labs of whoever runs it.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import socket
from pathlib import Path

PROJECT = "socklab"

LABEL_LAB = "socklab.lab"  # the lab id, on every container, network and volume
LABEL_HOST = "socklab.host"  # the host name, on containers
LABEL_NETWORK = "socklab.network"  # the scenario's network name, on networks
LABEL_SCENARIO = "socklab.scenario"  # the scenario a lab realises
LABEL_RECIPE = "socklab.recipe"  # the recipe hash, on node images
LABEL_OWNER = "socklab.owner"  # who made the lab (``owner()``), on every container and network

OWNER_ENV = "SOCKLAB_OWNER"  # sets the owner of the labs a process creates; user@machine by default

# RFC 2544 set 198.18.0.0/15 aside for network test labs; the ULA prefix is
# this project's own (fd00::/8, a fixed 40-bit global id "50:c1ab").
IPV4_POOL = ipaddress.IPv4Network("198.18.0.0/15")
IPV6_POOL = ipaddress.IPv6Network("fd50:c1ab::/48")
IPV4_SUBNET_PREFIX = 24
IPV6_SUBNET_PREFIX = 64

IMAGE_REPOSITORY = "socklab-node"

# Inside every lab host.
NODES_PARENT = "/opt/socklab"  # nodes/ is copied here; it is PYTHONPATH
LAB_HOME = "/lab"  # the lab user's folder: service logs and pid files
LAB_USER = "lab"  # unprivileged user that services and probes run as
GRADED_USER = "student"  # a graded submission runs as this user: it cannot write socklab's files nor signal probes
SUBMISSION_HOME = "/submission"  # the graded user's home: submissions are copied under it, one folder per role
GRADED_ID = 1001  # uid and gid of the graded user in the node image (docker/provision)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RECIPE_DIR = PROJECT_ROOT / "docker"
CATALOGUE_DIR = PROJECT_ROOT / "scenarios"


def owner() -> str:
    """Who the labs this process creates belong to: ``$SOCKLAB_OWNER`` if set, else ``user@machine``.

    Read at each call, so a process that changes the variable makes its next
    labs under the new owner.
    """
    if chosen := os.environ.get(OWNER_ENV, "").strip():
        return chosen
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container): the uid says who
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"
