"""wgfleet: agentless rollout and verification of route-based WireGuard + BGP VPNs."""

__version__ = "0.1.0"
