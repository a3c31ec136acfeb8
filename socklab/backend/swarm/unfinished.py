"""Teardowns a lost node cut short, remembered on the manager and finished once the node is back.

When a node does not answer, a teardown removes what it can and leaves the
rest: the hosts on that node, and the networks they hold. The one place
every client of the swarm sees is the manager, so the teardown leaves a
note there, a swarm config named after what it was removing (its label),
carrying its owner. The next time that owner's socklab speaks to the swarm
(any command) and every node answers again, the teardown is finished and
the note removed: a node that comes back is cleaned without anybody
having to remember it. Only one's own notes are acted on: another's
labs are theirs to clean.
"""

from __future__ import annotations

import base64
import hashlib

from docker.errors import APIError

import docker
from socklab.constants import LABEL_OWNER

PREFIX = "socklab-unfinished-"


def remember(client: docker.DockerClient, label: str, owner: str) -> None:
    """Leave a note that the teardown of ``label`` was cut short (once: a second note for it is the same)."""
    name = PREFIX + hashlib.sha256(label.encode()).hexdigest()[:20]
    try:
        client.configs.create(name=name, data=label.encode(), labels={LABEL_OWNER: owner})
    except APIError as exc:
        if exc.status_code != 409:  # 409: noted already
            raise


def pending(client: docker.DockerClient, owner: str) -> dict[str, str]:
    """``owner``'s notes: the label of each teardown to finish, by the note's id."""
    notes = client.configs.list(filters={"name": PREFIX, "label": f"{LABEL_OWNER}={owner}"})
    return {str(note.id): base64.b64decode(note.attrs["Spec"]["Data"]).decode() for note in notes
            if note.name.startswith(PREFIX)}


def forget(client: docker.DockerClient, note: str) -> None:
    try:
        client.configs.get(note).remove()
    except APIError as exc:
        if exc.status_code != 404:  # another of the owner's processes finished it meanwhile
            raise
