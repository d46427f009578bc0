"""Rendering of each gateway's files from the plan: WireGuard peer files and the BIRD config.

Templates are Jinja2 (``StrictUndefined``: a missing value is an error, not an empty
string). A user's templates directory, when given, is searched before the shipped
defaults (``templates/`` in the package), file by file. Each call builds its own
Environment unless one is passed in, so threads never share a mutable loader.

No private key is ever rendered: WireGuard files carry ``ListenPort`` and one ``[Peer]``;
the gateway joins them with its own key file (see ``wgfleet.paths``). Peer public keys
come from a ``public_keys`` mapping (gateway name → key) collected from the gateways.
For review, ``allow_placeholders=True`` renders a marked placeholder for a missing key
(``wg`` refuses it) and reports it in ``RenderedGateway.missing_keys``; otherwise a
missing key is an error.
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jinja2

from wgfleet.errors import BadInputError, ExitStatus, Problem, WgfleetError
from wgfleet.model import IPNetwork, Site
from wgfleet.paths import GatewayPaths
from wgfleet.plan import BgpSession, FleetPlan, GatewayPlan, Tunnel

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
WIREGUARD_TEMPLATE = "wireguard/tunnel.conf.j2"
BIRD_TEMPLATE = "bird/bird.conf.j2"
WIREGUARD_MODE = 0o600
BIRD_MODE = 0o640

_PRIVATE_KEY_LINE = re.compile(r"^\s*(PrivateKey|PresharedKey)\s*=", re.IGNORECASE | re.MULTILINE)


class MissingPublicKeyError(WgfleetError):
    """A peer's public key is not known, so its tunnel cannot be configured."""

    def __init__(self, gateway: str, peers: Sequence[str]) -> None:
        self.gateway = gateway
        self.peers = tuple(peers)
        super().__init__(
            f"{gateway}: public key of {', '.join(self.peers)} not known; collect the keys "
            "from those gateways (they generate them on first rollout), then render again"
        )

    exit_status = ExitStatus.FAILED


@dataclass(frozen=True)
class RenderedFile:
    """One rendered file, with where it goes on the gateway and in a review tree."""

    kind: Literal["wireguard", "bird"]
    relative_path: str
    remote_path: str
    content: str
    mode: int
    interface: str | None = None


@dataclass(frozen=True)
class RenderedGateway:
    """Every file of one gateway; ``missing_keys`` lists peers rendered with a placeholder."""

    name: str
    files: tuple[RenderedFile, ...]
    missing_keys: tuple[str, ...] = ()

    @property
    def wireguard(self) -> dict[str, RenderedFile]:
        """The peer files, by interface name."""
        return {f.interface: f for f in self.files if f.kind == "wireguard" and f.interface}

    @property
    def bird(self) -> RenderedFile:
        """The BIRD config."""
        return next(f for f in self.files if f.kind == "bird")


class _CompiledTemplates(jinja2.BytecodeCache):
    """Compiled templates shared by every Environment of this process.

    Each render call builds its own Environment, so without this every call (every
    gateway of a Nornir run) would compile the templates again. Entries are keyed by
    template file and checked against a checksum of its source, so an edited template is
    compiled afresh; a plain dict is enough under the GIL.
    """

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()


def template_environment(templates_dir: Path | None = None) -> jinja2.Environment:
    """Return a new Environment: ``templates_dir`` (if any) first, then the shipped templates.

    Raises:
        BadInputError: ``templates_dir`` is not a directory.
    """
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        if not templates_dir.is_dir():
            raise BadInputError(
                [Problem(str(templates_dir), "", "", "templates directory not found")]
            )
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders.append(jinja2.FileSystemLoader(PACKAGE_TEMPLATES))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates do not change during a run: no stat per file
        autoescape=False,  # noqa: S701 - configuration files, not HTML
        bytecode_cache=_COMPILED,
    )


def is_public_key(value: str) -> bool:
    """Return True if ``value`` is a WireGuard key: base64 of exactly 32 bytes."""
    if len(value) != 44:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _placeholder(peer: str) -> str:
    return f"PLACEHOLDER-public-key-of-{peer}-not-collected-yet"


# Before 3.13, CPython can fail with "SystemError: AST constructor recursion depth mismatch"
# when threads call compile() at once (python/cpython gh-106905). Nornir renders in threads,
# each with its own Environment, so compiling templates is serialised; rendering is not.
_COMPILE_LOCK = threading.Lock()


def _render(env: jinja2.Environment, name: str, context: Mapping[str, object]) -> str:
    try:
        with _COMPILE_LOCK:
            template = env.get_template(name)
        return template.render(context)
    except jinja2.TemplateSyntaxError as exc:
        where = f"line {exc.lineno}"
        raise BadInputError([Problem(exc.filename or name, where, "", exc.message or "")]) from exc
    except jinja2.TemplateError as exc:
        raise BadInputError([Problem(name, "", "", f"cannot render: {exc}")]) from exc


def render_gateway(
    plan: FleetPlan,
    name: str,
    public_keys: Mapping[str, str],
    *,
    env: jinja2.Environment | None = None,
    templates_dir: Path | None = None,
    allow_placeholders: bool = False,
    paths: GatewayPaths | None = None,
) -> RenderedGateway:
    """Render every file of gateway ``name``.

    Args:
        plan: The fleet plan.
        name: The gateway to render.
        public_keys: Public key per gateway name; only the peers' keys are used.
        env: Environment to render with (default: a new one, see ``template_environment``).
        templates_dir: User templates overriding the shipped ones (ignored with ``env``).
        allow_placeholders: Render a marked placeholder for a missing key (review only).
        paths: Gateway-side paths (default: the standard layout for the plan's namespace).

    Returns:
        The rendered files.

    Raises:
        MissingPublicKeyError: A peer's key is missing and placeholders are not allowed.
        BadInputError: A key is malformed, or a template is broken or renders a private key.
    """
    gateway = plan.gateway(name)
    env = env or template_environment(templates_dir)
    paths = paths or GatewayPaths(namespace=plan.settings.namespace)
    missing = [t.peer for t in gateway.tunnels if t.peer not in public_keys]
    if missing and not allow_placeholders:
        raise MissingPublicKeyError(name, missing)
    bad = [
        t.peer
        for t in gateway.tunnels
        if t.peer in public_keys and not is_public_key(public_keys[t.peer])
    ]
    if bad:
        raise BadInputError(
            [
                Problem(
                    "public keys", peer, "public_key", "not a WireGuard key (44 base64 characters)"
                )
                for peer in bad
            ]
        )
    files = [
        _wireguard_file(env, gateway, tunnel, public_keys, paths) for tunnel in gateway.tunnels
    ]
    bird_text = _render(env, BIRD_TEMPLATE, bird_context(plan, gateway, paths))
    files.append(
        RenderedFile(
            "bird", f"bird/{Path(paths.bird_config).name}", paths.bird_config, bird_text, BIRD_MODE
        )
    )
    return RenderedGateway(name=name, files=tuple(files), missing_keys=tuple(missing))


def _wireguard_file(
    env: jinja2.Environment,
    gateway: GatewayPlan,
    tunnel: Tunnel,
    public_keys: Mapping[str, str],
    paths: GatewayPaths,
) -> RenderedFile:
    key = public_keys.get(tunnel.peer)
    context = {
        "gateway": gateway,
        "tunnel": tunnel,
        "public_key": key if key is not None else _placeholder(tunnel.peer),
        "placeholder": key is None,
        "paths": paths,
    }
    text = _render(env, WIREGUARD_TEMPLATE, context)
    if _PRIVATE_KEY_LINE.search(text):
        raise BadInputError(
            [
                Problem(
                    WIREGUARD_TEMPLATE,
                    "",
                    "",
                    "renders a PrivateKey/PresharedKey line: keys stay on the gateway",
                )
            ]
        )
    return RenderedFile(
        kind="wireguard",
        relative_path=f"wireguard/{tunnel.interface}.conf",
        remote_path=paths.peer_file(tunnel.interface),
        content=text,
        mode=WIREGUARD_MODE,
        interface=tunnel.interface,
    )


def render_fleet(
    plan: FleetPlan,
    public_keys: Mapping[str, str],
    *,
    templates_dir: Path | None = None,
    allow_placeholders: bool = False,
    names: Iterable[str] | None = None,
) -> tuple[RenderedGateway, ...]:
    """Render every gateway (or those in ``names``) with one Environment for this call."""
    env = template_environment(templates_dir)
    selected = [g.name for g in plan.gateways] if names is None else list(names)
    return tuple(
        render_gateway(plan, name, public_keys, env=env, allow_placeholders=allow_placeholders)
        for name in selected
    )


# --- the BIRD context -------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefixSet:
    """A BIRD prefix set constant: ``define NAME = [ p+, … ];`` (one address family)."""

    name: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class FilterSpec:
    """An import or export filter for one family, accepting routes in the named sets."""

    name: str
    family: Literal["v4", "v6"]
    sets: tuple[str, ...]
    transit_sets: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionView:
    """A BGP session with the filters its channel uses."""

    session: BgpSession
    import_filter: str
    export_filter: str
    description: str


@functools.lru_cache(maxsize=65536)
def _nets(prefixes: tuple[IPNetwork, ...]) -> Mapping[str, tuple[str, ...]]:
    """Return a site's prefixes as BIRD prefix-set items (``p+``) per family ("4", "6").

    Cached, so a large fleet formats each site's prefixes once, not once per gateway.
    """
    return {
        family: tuple(f"{p}+" for p in prefixes if p.version == version)
        for family, version in (("4", 4), ("6", 6))
    }


def _sets(label: str, nets: Iterable[Mapping[str, tuple[str, ...]]]) -> dict[str, PrefixSet]:
    """Return the non-empty prefix sets ``<label>_NETS4`` and ``<label>_NETS6``."""
    parts = list(nets)
    result: dict[str, PrefixSet] = {}
    for family in ("4", "6"):
        items = tuple(itertools.chain.from_iterable(part[family] for part in parts))
        if items:
            result[family] = PrefixSet(f"{label}_NETS{family}", items)
    return result


def bird_context(plan: FleetPlan, gateway: GatewayPlan, paths: GatewayPaths) -> dict[str, object]:
    """Return the variables the BIRD template sees (documented in ``bird/bird.conf.j2``)."""
    site = gateway.site
    sets: dict[str, PrefixSet] = {}
    local = _sets(f"SITE{site.number}", [_nets(site.prefixes)])
    sets.update({s.name: s for s in local.values()})
    transit: dict[str, PrefixSet] = {}
    if gateway.role in ("hub", "spoke") and plan.transit_sites:
        members = [n for n in plan.transit_sites if gateway.role == "hub" or n != site.number]
        transit = _sets("TRANSIT", (_nets(plan.site(n).prefixes) for n in members))
        sets.update({s.name: s for s in transit.values()})

    filters: dict[str, FilterSpec] = {}
    views: list[SessionView] = []
    for session in gateway.sessions:
        fam: Literal["v4", "v6"] = "v4" if session.family == "ipv4" else "v6"
        digit = fam[1]
        peer_site: Site = plan.site(session.import_sites[0])
        remote = _sets(f"SITE{peer_site.number}", [_nets(peer_site.prefixes)])
        sets.update({s.name: s for s in remote.values()})
        kind = "hub" if session.import_transit else "site"
        import_name = f"import_{kind}{peer_site.number}_{fam}"
        if import_name not in filters:
            extra = (transit[digit].name,) if session.import_transit and digit in transit else ()
            own = (remote[digit].name,) if digit in remote else ()
            filters[import_name] = FilterSpec(import_name, fam, own + extra)
        export_name = f"export_{'transit' if session.export_transit else 'site'}_{fam}"
        if export_name not in filters:
            own = (local[digit].name,) if digit in local else ()
            extra = (transit[digit].name,) if session.export_transit and digit in transit else ()
            filters[export_name] = FilterSpec(export_name, fam, own, extra)
        description = (
            f"{session.peer} (site {peer_site.number}, AS {session.peer_asn})"
            f" over {session.interface}"
        )
        views.append(SessionView(session, import_name, export_name, description))

    routing = site.routing
    return {
        "gateway": gateway,
        "site": site,
        "settings": plan.settings,
        "bgp": plan.settings.bgp,
        "paths": paths,
        "prefix_sets": sorted(sets.values(), key=_set_order),
        "import_filters": [f for f in filters.values() if f.name.startswith("import_")],
        "export_filters": sorted(
            (f for f in filters.values() if f.name.startswith("export_")), key=lambda f: f.name
        ),
        "sessions": views,
        "routing": routing,
        "site_interfaces": [i.name for i in gateway.gateway.interfaces],
        "static4": [r for r in routing.static if r.prefix.version == 4],
        "static6": [r for r in routing.static if r.prefix.version == 6],
        "tunnel_pattern": f"{plan.settings.interface_prefix}*",
    }


def _set_order(prefix_set: PrefixSet) -> tuple[int, int, str]:
    match = re.match(r"SITE(\d+)_", prefix_set.name)
    return (0, int(match.group(1)), prefix_set.name) if match else (1, 0, prefix_set.name)
