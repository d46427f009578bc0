"""The lab's wiring: the internet bridge, site LANs and each gateway's public namespace.

Veths are created directly between target namespaces so nothing appears in the machine's
own namespace. Every function is idempotent at the granularity of a namespace.
"""

from __future__ import annotations

from wgfleet.lab.system import ip_batch, netns_inode, run
from wgfleet.lab.topology import LabGateway, LabSite, LabTopology

# The sysctls set inside lab namespaces (net.* only: they are per namespace).
_NS_SYSCTLS = (
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.all.keep_addr_on_down=1",
)


def existing_netns() -> set[str]:
    """Names of the machine's named network namespaces."""
    out = run(["ip", "netns", "list"])
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _add_netns(name: str) -> None:
    run(["ip", "netns", "add", name])
    for setting in _NS_SYSCTLS:
        run(["ip", "netns", "exec", name, "sysctl", "-q", "-w", setting])


def ensure_inet(topo: LabTopology, present: set[str]) -> None:
    """The "internet": one bridge joining every gateway's public interface."""
    if topo.inet_netns in present:
        return
    _add_netns(topo.inet_netns)
    ip_batch(topo.inet_netns, ["link set lo up", "link add br0 type bridge", "link set br0 up"])


def ensure_site(topo: LabTopology, site: LabSite, present: set[str]) -> None:
    """A site LAN: a bridge owning R<s>'s addresses, default routes via the site's gateways."""
    if site.netns in present:
        return
    _add_netns(site.netns)
    gateways = topo.gateways_of(site.number)
    hops6 = " ".join(f"nexthop via {gw.lan6.ip} dev br0" for gw in gateways)
    hops4 = " ".join(f"nexthop via {gw.lan4.ip} dev br0" for gw in gateways)
    ip_batch(
        site.netns,
        [
            "link set lo up",
            "link add br0 type bridge",
            "link set br0 up",
            f"addr add {site.host6} dev br0 nodad",
            f"addr add {site.host4} dev br0",
            f"route add ::/0 {hops6}",
            f"route add 0.0.0.0/0 {hops4}",
        ],
    )


def ensure_gateway_net(topo: LabTopology, gw: LabGateway, present: set[str]) -> None:
    """A gateway's public namespace: eth0 on the internet, lan0 to its site, unconfigured."""
    if gw.netns in present:
        return
    _add_netns(gw.netns)
    ip_batch(
        gw.netns,
        [
            "link set lo up",
            f"link add {gw.uplink} type veth peer name {gw.inet_veth} netns {topo.inet_netns}",
            f"addr add {gw.endpoint} dev {gw.uplink} nodad",
            f"link set {gw.uplink} up",
            f"route add 2001:db8::/32 dev {gw.uplink}",
        ],
    )
    ip_batch(topo.inet_netns, [f"link set {gw.inet_veth} master br0 up"])
    plug_lan(topo, gw)


def plug_lan(topo: LabTopology, gw: LabGateway) -> None:
    """(Re)create the gateway's site-facing veth; the old one may linger in a dead `private`."""
    site_ns = topo.sites[gw.site - 1].netns
    run(["ip", "-n", site_ns, "link", "del", gw.site_veth], check=False)
    ip_batch(
        gw.netns,
        [f"link add {gw.lan_interface} type veth peer name {gw.site_veth} netns {site_ns}"],
    )
    ip_batch(site_ns, [f"link set {gw.site_veth} master br0 up"])


def delete_netns(names: list[str]) -> None:
    """Delete named namespaces that exist (idempotent)."""
    for name in names:
        if netns_inode(name) is not None:
            run(["ip", "netns", "del", name], check=False)
