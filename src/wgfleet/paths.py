"""Where wgfleet keeps its files on a gateway: one place, so tasks, templates and docs agree.

Layout on a gateway (``<ns>`` is the private namespace, ``private`` by default)::

    /etc/wireguard/wgfleet/            0700, owned by root
        private.key                    0600, the gateway's WireGuard private key (never leaves it)
        public.key                     0644, its public key, collected by the control machine
        <if>.conf                      0600, peer file of one tunnel (no PrivateKey)
        <if>.psk                       0600, the tunnel's preshared key (``preshared_keys``)
    /etc/bird/wgfleet-<ns>.conf        the BIRD 2 config of the instance in <ns>
    /etc/bird/wgfleet-<ns>.conf.new    candidate being checked (`bird -p`) and tried
    /etc/bird/wgfleet-<ns>.conf.prev   the previous live config, kept for rollback
    /run/bird/wgfleet-<ns>.ctl         BIRD control socket (``birdc -s``)
    /run/bird/wgfleet-<ns>.pid         BIRD pidfile (``bird -P``)
    /var/log/bird-wgfleet-<ns>.log     BIRD log file (``log "…" all;``)
    /run/wgfleet/lock                  a runbook run's lock (owner, time, runbook, run id)

One key per gateway, shared by all its tunnels: a peer file joined after a key-only file
(``[Interface]`` + ``PrivateKey``) is what ``wg syncconf`` receives, so no pushed file and no
argv ever carries the key. The daemon-side names embed the namespace so a second wgfleet
instance (another namespace) or a distribution's own BIRD never collides with ours.
``GatewayPaths(root=…)`` relocates everything under another directory (tests, odd layouts).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

WIREGUARD_DIR = "/etc/wireguard/wgfleet"
BIRD_DIR = "/etc/bird"
BIRD_RUN_DIR = "/run/bird"
LOG_DIR = "/var/log"

CANDIDATE_SUFFIX = ".new"
PREVIOUS_SUFFIX = ".prev"


@dataclass(frozen=True)
class GatewayPaths:
    """Absolute paths of wgfleet's files on one gateway, for the instance in ``namespace``.

    Attributes:
        namespace: The private network namespace BIRD and the tunnels live in.
        root: Prefix under which the whole layout lives (``/`` on a real gateway).
    """

    namespace: str = "private"
    root: str = "/"

    def _at(self, path: str) -> str:
        return posixpath.join(self.root, path.lstrip("/"))

    @property
    def wireguard_dir(self) -> str:
        """Directory of the key and the peer files (mode 0700)."""
        return self._at(WIREGUARD_DIR)

    @property
    def private_key(self) -> str:
        """The gateway's private key, generated there (mode 0600)."""
        return posixpath.join(self.wireguard_dir, "private.key")

    @property
    def public_key(self) -> str:
        """The gateway's public key, derived from the private key on the gateway."""
        return posixpath.join(self.wireguard_dir, "public.key")

    def peer_file(self, interface: str) -> str:
        """Peer file of one tunnel (``[Interface] ListenPort`` and one ``[Peer]``)."""
        return posixpath.join(self.wireguard_dir, f"{interface}.conf")

    def psk_file(self, interface: str) -> str:
        """Preshared key of one tunnel, the same at both ends (only with ``preshared_keys``)."""
        return posixpath.join(self.wireguard_dir, f"{interface}.psk")

    @property
    def bird_config(self) -> str:
        """The live BIRD config, the file ``bird -c`` reads at start and on ``configure``."""
        return self._at(posixpath.join(BIRD_DIR, f"wgfleet-{self.namespace}.conf"))

    @property
    def bird_candidate(self) -> str:
        """Where a new BIRD config is uploaded, checked and tried before it goes live."""
        return self.bird_config + CANDIDATE_SUFFIX

    @property
    def bird_previous(self) -> str:
        """The previous live BIRD config, kept for rollback."""
        return self.bird_config + PREVIOUS_SUFFIX

    @property
    def bird_socket(self) -> str:
        """BIRD's control socket (``birdc -s``)."""
        return self._at(posixpath.join(BIRD_RUN_DIR, f"wgfleet-{self.namespace}.ctl"))

    @property
    def bird_pidfile(self) -> str:
        """BIRD's pidfile (``bird -P``)."""
        return self._at(posixpath.join(BIRD_RUN_DIR, f"wgfleet-{self.namespace}.pid"))

    @property
    def lock(self) -> str:
        """The lock a runbook run holds on the gateway (JSON: owner, started, run_id …)."""
        return self._at("/run/wgfleet/lock")

    @property
    def bird_log(self) -> str:
        """BIRD's log file, named in the rendered config."""
        return self._at(posixpath.join(LOG_DIR, f"bird-wgfleet-{self.namespace}.log"))
