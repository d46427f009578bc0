"""Nornir tasks: the only code that talks to gateways. Usable from a plain Nornir script.

Example::

    from nornir_utils.plugins.functions import print_result
    from wgfleet.inventory import load_nornir
    from wgfleet.tasks import ensure_keys

    nr = load_nornir(Path("inventory"))
    print_result(nr.run(task=ensure_keys, dry_run=True))
"""

from wgfleet.tasks.bird import confirm_bird, converge_bird, undo_bird
from wgfleet.tasks.converge import (
    apply_gateway,
    converge_namespace,
    converge_tunnels,
    ensure_keys,
    gather_facts,
)
from wgfleet.tasks.psk import install_psks, read_psks
from wgfleet.tasks.verify import collect_observation

__all__ = [
    "apply_gateway",
    "collect_observation",
    "confirm_bird",
    "converge_bird",
    "converge_namespace",
    "converge_tunnels",
    "ensure_keys",
    "gather_facts",
    "install_psks",
    "read_psks",
    "undo_bird",
]
