"""The Nornir inventory and known_hosts a lab writes for its gateways (pure)."""

from __future__ import annotations

from typing import Any

from wgfleet.lab.topology import LabTopology


def lab_inventory(topo: LabTopology) -> dict[str, dict[str, Any]]:
    """Return ``{"hosts": …, "groups": …, "defaults": …}`` in wgfleet's inventory schema."""
    hosts: dict[str, Any] = {}
    for gw in topo.gateways:
        hosts[gw.name] = {
            "hostname": str(gw.mgmt_address),
            "port": topo.port,
            "groups": [f"site{gw.site}"],
            "data": {
                "gateway": {
                    "index": gw.index,
                    "endpoint": str(gw.endpoint.ip),
                    "become": "root",
                    "wireguard": "auto",
                    "interfaces": [
                        {"name": gw.lan_interface, "addresses": [str(gw.lan6), str(gw.lan4)]}
                    ],
                }
            },
        }
    groups: dict[str, Any] = {}
    for site in topo.sites:
        groups[f"site{site.number}"] = {
            "data": {
                "site": {
                    "number": site.number,
                    "asn": 65000 + site.number,
                    "prefixes": [str(p) for p in site.prefixes],
                    "routes": {"mode": "connected"},
                    "probes": [str(site.host6.ip), str(site.host4.ip)],
                }
            }
        }
    defaults: dict[str, Any] = {
        "username": "root",
        "connection_options": {
            "wgssh": {
                "extras": {
                    "known_hosts": str(topo.state_dir / "known_hosts"),
                    "key_file": str(topo.state_dir / "id_ed25519"),
                }
            }
        },
        "data": {"fleet": {"namespace": "private"}},
    }
    per_site = len(topo.gateways) // len(topo.sites)
    tunnels = len(topo.gateways) * (len(topo.gateways) - per_site) // 2
    if tunnels > 128:  # the default 169.254.1.0/24 holds 128 point-to-point /31s
        defaults["data"]["fleet"]["pools"] = {"ipv6": "2001:db8:ff::/64", "ipv4": "169.254.0.0/16"}
    return {"hosts": hosts, "groups": groups, "defaults": defaults}


def known_hosts_lines(topo: LabTopology, host_keys: dict[str, str]) -> list[str]:
    """known_hosts lines ``[127.77.s.n]:PORT ssh-ed25519 AAAA…`` for each gateway."""
    return [
        f"[{gw.mgmt_address}]:{topo.port} {host_keys[gw.name]}"
        for gw in topo.gateways
        if gw.name in host_keys
    ]
