"""Every command line wgfleet runs on a gateway, built in one place from validated values.

Inputs come from a validated inventory (interface, namespace and path names are checked
for shell metacharacters) and are quoted here once more with ``shlex.quote``. Nothing in
this module runs anything: the connection sends these strings, the tasks decide which.
"""

from __future__ import annotations

import shlex

from wgfleet.paths import GatewayPaths

q = shlex.quote

# Section markers of the gather script's output (see wgfleet.facts).
MARK = "### wgfleet "

# Strip the private key (field 2 of an interface line) and any preshared key (field 3 of a
# peer line) ON THE GATEWAY: `wg show all dump` prints both in clear, and neither may cross
# the SSH connection. "(none)" stays, so the parsers still tell "set" from "unset".
_SCRUB_DUMP = (
    r"""awk -F'\t' 'BEGIN{OFS="\t"} NF==5 && $2!="(none)"{$2="(hidden)"} """
    r"""NF==9 && $3!="(none)"{$3="(hidden)"} {print}'"""
)

# `set --` the SSH client's address and ports. sudo (env_reset) drops SSH_CONNECTION, so
# when it is not in our environment, take it from the nearest ancestor process that has it
# (sudo itself, or the login shell): without it the "would cut the SSH session" guard is off.
_SSH_CLIENT = (
    r"""c=$SSH_CONNECTION; p=$$; while [ -z "$c" ] && [ "${p:-0}" -gt 1 ]; do """
    r"""p=$(awk '/^PPid:/{print $2}' /proc/$p/status 2>/dev/null); """
    r"""c=$(tr '\0' '\n' < /proc/${p:-0}/environ 2>/dev/null | sed -n 's/^SSH_CONNECTION=//p'); """
    r"""done; set -- $c"""
)


# All-zero key: what `wg` reads as "no preshared key" (an absent line would keep the old one).
NO_PSK = "A" * 43 + "="


def psk_fingerprints(paths: GatewayPaths, interfaces: list[str]) -> str:
    """Print ``live IF FP`` for every WireGuard peer in the private namespace and
    ``file IF FP`` for each of ``interfaces``: fingerprints of the preshared key the live
    interface uses and of the one in the tunnel's key file, ``-`` when there is none.

    A fingerprint is the first 16 hex digits of SHA-256 over the key's line, computed on
    the gateway: enough to tell "same key" from "different", useless to recover it. The
    key itself never crosses the connection (``printf`` is a shell builtin: no argv).
    """
    files = " ".join(q(name) for name in interfaces)
    directory = q(paths.wireguard_dir)
    return (
        f"ip netns exec {q(paths.namespace)} wg show all preshared-keys 2>/dev/null | "
        "while read -r i p k; do case $k in '(none)'|'') k=-;; "
        "*) k=$(printf '%s\\n' \"$k\" | sha256sum | cut -c1-16);; esac; echo live $i $k; done; "
        f"for i in {files}; do f={directory}/$i.psk; "
        'if [ -s "$f" ]; then k=$(sha256sum < "$f" | cut -c1-16); else k=-; fi; '
        "echo file $i $k; done"
    )


BATCH_MARK = "### wgfleet command "


def batch(commands: list[str]) -> str:
    """One script running ``commands`` in order, each in its own subshell, stopping at the
    first that fails with its exit status (one round trip for a whole change).

    Before each command a marker line (``### wgfleet command N``) goes to stderr, so
    :func:`batch_failure` can tell which command failed and what it alone printed.
    """
    return "".join(
        f"echo '{BATCH_MARK}{n}' >&2\n( {c}\n) || exit $?\n" for n, c in enumerate(commands)
    )


def batch_failure(stderr: str) -> tuple[int | None, str]:
    """The index of the command a failed :func:`batch` stopped at, and its own stderr."""
    index: int | None = None
    own: list[str] = []
    for line in stderr.splitlines():
        if line.startswith(BATCH_MARK) and line[len(BATCH_MARK) :].strip().isdigit():
            index, own = int(line[len(BATCH_MARK) :]), []
        else:
            own.append(line)
    return index, "\n".join(own)


def in_netns(namespace: str, command: str) -> str:
    """Run ``command`` (a shell command line) inside a network namespace."""
    return f"ip netns exec {q(namespace)} sh -c {q(command)}"


def sweep_temporaries(paths: GatewayPaths) -> str:
    """Delete what a cut-off transfer left: wgfleet's hidden temporary files in its two
    directories (``.NAME.wgfleet-tmp-…``, ``.NAME.wgfleet-prev-…``), printing their names."""
    dirs = " ".join(q(d) for d in (paths.wireguard_dir, _dirname(paths.bird_config)))
    return (
        f"find {dirs} -maxdepth 1 -type f "
        r"\( -name '.*.wgfleet-tmp-*' -o -name '.*.wgfleet-prev-*' \) -print -delete "
        "2>/dev/null || true"
    )


def gather_script(paths: GatewayPaths, interfaces: list[str], *, sweep: bool = False) -> str:
    """One shell script that prints everything apply and verify need, in marked sections.

    Read-only, unless ``sweep`` (a real apply): then it first deletes the temporary files
    a cut-off transfer left (section ``swept`` lists them). Sections: identity, kernel
    WireGuard support, namespaces, links of both namespaces, WireGuard state of both
    (private key scrubbed), sysctls, files wgfleet manages, BIRD status and the interface
    that carries the SSH session.
    """
    ns = q(paths.namespace)
    managed = [paths.peer_file(i) for i in interfaces] + [paths.bird_config]
    lines = [
        *([f"echo '{MARK}swept'; {sweep_temporaries(paths)}"] if sweep else []),
        f"echo '{MARK}hostname'; hostname",
        f"echo '{MARK}pubkey'; if [ -s {q(paths.private_key)} ]; then "
        f"wg pubkey < {q(paths.private_key)}; fi",
        f"echo '{MARK}kernel_wg'; if [ -d /sys/module/wireguard ]; then echo yes; else echo no; fi",
        f"echo '{MARK}netns'; ip -j netns list",
        f"echo '{MARK}links'; ip -j -d addr show",
        f"echo '{MARK}wg'; wg show all dump 2>/dev/null | {_SCRUB_DUMP}",
        f"echo '{MARK}private_links'; ip -n {ns} -j -d addr show 2>/dev/null",
        f"echo '{MARK}private_wg'; ip netns exec {ns} wg show all dump 2>/dev/null | {_SCRUB_DUMP}",
        f"echo '{MARK}sysctl'; ip netns exec {ns} sysctl -e net.ipv4.ip_forward "
        "net.ipv6.conf.all.forwarding net.ipv6.conf.all.keep_addr_on_down "
        "net.ipv6.conf.default.keep_addr_on_down 2>/dev/null",
        f"echo '{MARK}peer_files'; ls -1 {q(paths.wireguard_dir)} 2>/dev/null",
        # A file without a final newline would glue the next marker to its last line.
        *(
            f"echo {q(f'{MARK}file {path}')}; cat {q(path)} 2>/dev/null; "
            f'[ -z "$(tail -c 1 {q(path)} 2>/dev/null)" ] || echo'
            for path in managed
        ),
        f"echo '{MARK}psk'",
        psk_fingerprints(paths, interfaces),
        f"echo '{MARK}bird'; birdc -r -s {q(paths.bird_socket)} show status 2>&1",
        f"echo '{MARK}mgmt'; {_SSH_CLIENT}; "
        'if [ -n "$1" ]; then ip -j route get "$1" 2>/dev/null; fi',
        f"echo '{MARK}end'",
    ]
    return "\n".join(lines) + "\n"


def verify_script(
    paths: GatewayPaths,
    pings: list[tuple[str | None, list[str]]],
    count: int,
    interfaces: list[str] | None = None,
) -> str:
    """One read-only script collecting everything verification needs, in marked sections.

    WireGuard state comes from the private namespace with the private key stripped on the
    gateway; UDP sockets from the default namespace (where WireGuard's sockets stay); BGP
    from ``birdc -r`` (read-only); routes BIRD installed; fingerprints of the preshared
    keys of ``interfaces`` (never the keys); fping from inside ``private``, one run per
    ``(source address or None, targets)`` group.
    """
    ns = q(paths.namespace)
    lines = [
        f"echo '{MARK}now'; date +%s",
        f"echo '{MARK}netns'; ip -j netns list",
        f"echo '{MARK}links'; ip -n {ns} -j -d addr show 2>/dev/null",
        f"echo '{MARK}wg'; ip netns exec {ns} wg show all dump 2>/dev/null | {_SCRUB_DUMP}",
        f"echo '{MARK}udp'; ss -H -lun",
        f"echo '{MARK}bird'; birdc -r -s {q(paths.bird_socket)} show protocols all 2>&1",
        f"echo '{MARK}routes6'; ip -n {ns} -6 -j route show proto bird 2>/dev/null",
        f"echo '{MARK}routes4'; ip -n {ns} -4 -j route show proto bird 2>/dev/null",
        *([f"echo '{MARK}psk'", psk_fingerprints(paths, interfaces)] if interfaces else []),
        f"echo '{MARK}ping'",
    ]
    for source, targets in pings:
        if not targets:
            continue
        src = f"-S {q(source)} " if source else ""
        hosts = " ".join(q(t) for t in targets)
        lines.append(f"ip netns exec {ns} fping -q -c {int(count)} -p 200 -t 500 {src}{hosts} 2>&1")
    lines.append(f"echo '{MARK}end'")
    return "\n".join(lines) + "\n"


def publish_public_key(paths: GatewayPaths) -> str:
    """Print the public key and keep ``public.key`` in step, writing it only when it differs
    (a converged gateway's files stay untouched)."""
    key, public = q(paths.private_key), q(paths.public_key)
    return (
        f"pub=$(wg pubkey < {key}) && {{ printf '%s\\n' \"$pub\" | cmp -s - {public} || "
        f'printf \'%s\\n\' "$pub" > {public}; }} && echo "$pub"'
    )


LOCKED_STATUS = 75  # EX_TEMPFAIL: another run holds the gateway


def refuse_if_locked(paths: GatewayPaths, run_id: str | None) -> str:
    """Exit ``LOCKED_STATUS`` printing the lock record when a runbook run other than
    ``run_id`` holds the gateway (any run when ``run_id`` is None)."""
    lock = q(paths.lock)
    needle = q(f'"run_id": "{run_id}"')
    mine = f" && ! grep -qF -- {needle} {lock}" if run_id else ""
    return f"if [ -s {lock} ]{mine}; then cat {lock}; exit {LOCKED_STATUS}; fi; "


def ensure_key(paths: GatewayPaths, run_id: str | None = None) -> str:
    """Generate the private key on the gateway if it has none (umask 077); print the public key.

    Prints ``generated`` first when it made a key. The key never leaves the gateway: only
    ``wg pubkey`` output is printed. A gateway locked by a runbook run other than
    ``run_id`` is refused before anything (see :func:`refuse_if_locked`): this is the
    first thing every apply runs on a gateway, so an apply never interferes with a run.
    """
    key, directory = q(paths.private_key), q(paths.wireguard_dir)
    return (
        refuse_if_locked(paths, run_id)
        + f"umask 077 && mkdir -p {directory} && chmod 700 {directory} && "
        f"if [ ! -s {key} ]; then wg genkey > {key}.tmp && mv -f {key}.tmp {key} && "
        f"echo generated; fi && {publish_public_key(paths)}"
    )


def read_public_key(paths: GatewayPaths) -> str:
    """Print the gateway's public key, or nothing when it has no private key yet."""
    key = q(paths.private_key)
    return f"if [ -s {key} ]; then wg pubkey < {key}; fi"


def feed_config(paths: GatewayPaths, interface: str, verb: str, psk: bool = False) -> str:
    """``wg setconf|syncconf`` from the key file joined with the peer file, on the gateway.

    FACTS: a file without PrivateKey would erase the interface's key, so the stream always
    starts with an ``[Interface] PrivateKey`` section built from the key file, which must
    exist and be non-empty (checked first: an empty key file would remove the key too).
    The peer file ends in its ``[Peer]`` section, so a ``PresharedKey`` line appended
    belongs to it: read from the tunnel's key file when ``psk`` (which must then exist and be
    non-empty), the all-zero "none" otherwise (syncconf keeps an absent field's old value).
    """
    key, pskfile = q(paths.private_key), q(paths.psk_file(interface))
    check = f"test -s {key} && test -s {pskfile}" if psk else f"test -s {key}"
    tail = f"printf 'PresharedKey = '; cat {pskfile}" if psk else f"echo 'PresharedKey = {NO_PSK}'"
    return (
        f"{check} && {{ printf '[Interface]\\nPrivateKey = '; cat {key}; "
        f"cat {q(paths.peer_file(interface))}; {tail}; }} | wg {verb} {q(interface)} /dev/stdin"
    )


def create_userspace(interface: str) -> str:
    """Start wireguard-go detached from the session, and wait until its UAPI answers.

    ``setsid -w`` can return before wireguard-go's daemon has finished setting its TUN
    device up; moving the link at that moment kills the daemon, so wait for ``wg show``.
    """
    i = q(interface)
    return (
        f"setsid -w wireguard-go {i} </dev/null >/dev/null 2>&1; "
        f"for _ in $(seq 100); do wg show {i} listen-port >/dev/null 2>&1 && exit 0; "
        "sleep 0.05; done; "
        f"echo {q(f'wireguard-go did not start {interface}')} >&2; exit 1"
    )


def create_kernel(interface: str) -> str:
    """Create a kernel WireGuard interface in the default namespace."""
    return f"ip link add dev {q(interface)} type wireguard"


def ip_ns(namespace: str | None, args: str) -> str:
    """An ``ip`` command, in a namespace when given (``ip -n NS …``)."""
    return f"ip -n {q(namespace)} {args}" if namespace else f"ip {args}"


def fallback_script(
    namespace: str, routes: list[tuple[str, str, str]], metric: int, add: bool
) -> str:
    """Add (``replace``: idempotent) or delete fallback routes ``(prefix, via, device)`` in
    the private namespace; deleting a route that is not there is not an error."""
    lines = []
    for prefix, via, dev in routes:
        spec = f"{q(prefix)} via {q(via)} dev {q(dev)} metric {int(metric)} proto static"
        if add:
            lines.append(ip_ns(namespace, f"route replace {spec}"))
        else:
            lines.append(ip_ns(namespace, f"route del {spec}") + " 2>/dev/null || true")
    return "\n".join(["set -e", *lines] if add else lines) + "\n"


def bird_check(path: str) -> str:
    """Syntax-check a BIRD config without starting anything."""
    return f"bird -p -c {q(path)}"


def bird_start(paths: GatewayPaths) -> str:
    """Start the BIRD instance inside the private namespace with its own socket and pidfile."""
    return (
        f"mkdir -p {q(str(_dirname(paths.bird_socket)))} && "
        f"ip netns exec {q(paths.namespace)} bird -c {q(paths.bird_config)} "
        f"-s {q(paths.bird_socket)} -P {q(paths.bird_pidfile)}"
    )


def birdc(paths: GatewayPaths, command: str, *, readonly: bool = False) -> str:
    """A birdc command against wgfleet's instance."""
    flag = "-r " if readonly else ""
    return f"birdc {flag}-s {q(paths.bird_socket)} {command}"


def _dirname(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"
