"""The firewall inside a networked container instance, as nft text: pure functions.

slirp4netns gives the instance a NAT'd network (tap0 10.0.2.100/24, gateway 10.0.2.2, DNS
forwarder 10.0.2.3) whose outbound connections slirp makes with ordinary sockets *on the host*.
So whatever address the function names, slirp connects to it from the host's network namespace:
the host's own addresses (where the daemon listens on 0.0.0.0) are reachable unless something
stops the packet before slirp sees it (measured here: without the table below, a function
connects to a listener on 0.0.0.0 through the host's eth0 address). ``--disable-host-loopback``
only covers the gateway's mapping to 127.0.0.1. And libslirp maps the DNS address 10.0.2.3 on
*every* port to the host's resolver: a resolver on this host (127.0.0.53, a local dnsmasq) would
expose whatever else listens on its address.

Hence a table in the instance's own network namespace, applied from the host before the agent
runs. The function has no capability in that namespace (uid 65534, all caps dropped, no new
user namespaces), so it can neither change nor remove it. Its output chain allows:

- anything on the instance's own loopback;
- DNS (udp and tcp port 53) to slirp's forwarder 10.0.2.3: it reaches only the resolver the host
  itself uses, which is what a function doing name lookups needs;
- every other IPv4 destination except: the rest of slirp's network (the gateway means the host),
  the host's own local and broadcast addresses (read from the kernel's local routing table),
  0.0.0.0/8 ("this host") and 169.254.0.0/16 (link-local: cloud metadata services hand out the
  machine's credentials there).

IPv6 is refused too (slirp runs without it, so nothing would carry it anyway). Refused
connections fail at once (EHOSTUNREACH) instead of hanging until the function's timeout: a
dropped SYN would be retried for minutes. The chain's drop policy is only a backstop.

Other instances need no rule: each has its own namespace and its own slirp, and slirp opens no
inbound ports (no API socket, no port forwarding), so nothing of one instance is addressable from
another.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

TABLE = "nova"
HOST_SET = "host"
TAP_NAME = "tap0"
SLIRP_CIDR = ipaddress.IPv4Network("10.0.2.0/24")  # slirp4netns's default network
GATEWAY = ipaddress.IPv4Address("10.0.2.2")  # the host, as slirp shows it
DNS_FORWARDER = ipaddress.IPv4Address("10.0.2.3")
GUEST_ADDRESS = ipaddress.IPv4Address("10.0.2.100")  # what --configure gives tap0
MTU = 65520  # slirp4netns's recommendation for throughput (few, large segments)

# /etc/resolv.conf of networked instances: the host's own may name 127.0.0.53 or another
# loopback resolver, which inside the instance is the instance's own (empty) loopback.
RESOLV_CONF = f"nameserver {DNS_FORWARDER}\noptions edns0\n".encode()

# Never reachable, whatever the host's addresses: "this host" and link-local (metadata).
ALWAYS_BLOCKED: tuple[ipaddress.IPv4Network, ...] = (
    ipaddress.IPv4Network("0.0.0.0/8"),
    ipaddress.IPv4Network("169.254.0.0/16"),
)
_LOCAL_ROUTE_TYPES = ("LOCAL", "BROADCAST")


def host_addresses(fib_trie: str) -> tuple[ipaddress.IPv4Network, ...]:
    """The host's local and broadcast IPv4 prefixes, from ``/proc/net/fib_trie``.

    The format is a tree of ``|-- ADDRESS`` leaves, each followed by ``/LEN SCOPE TYPE`` lines
    (one per route at that address)::

        |-- 127.0.0.0
           /8 host LOCAL
        |-- 192.0.2.2
           /32 host LOCAL

    Reading the routing table rather than the interface addresses also catches "local" routes
    for whole ranges (AnyIP). Returned collapsed and sorted, so equal sets compare equal.
    """
    found: list[ipaddress.IPv4Network] = []
    leaf: str | None = None
    for line in fib_trie.splitlines():
        text = line.strip()
        if text.startswith("|-- "):
            leaf = text[4:].strip()
        elif text.startswith("/") and leaf is not None:
            fields = text.split()
            if fields[-1] in _LOCAL_ROUTE_TYPES:
                found.append(ipaddress.IPv4Network(f"{leaf}{fields[0]}", strict=False))
    return tuple(ipaddress.collapse_addresses(found))


def read_host_addresses() -> tuple[ipaddress.IPv4Network, ...]:
    """The current host's addresses (a ~100 µs procfs read, no subprocess)."""
    with open("/proc/net/fib_trie") as f:
        return host_addresses(f.read())


def _elements(networks: Iterable[ipaddress.IPv4Network]) -> str:
    return ", ".join(str(n) for n in ipaddress.collapse_addresses(networks))


def ruleset(host: Sequence[ipaddress.IPv4Network]) -> str:
    """The whole table, loaded with ``nft -f -`` (one atomic transaction)."""
    blocked = _elements((SLIRP_CIDR, *ALWAYS_BLOCKED))
    host_elements = f"elements = {{ {_elements(host)} }}" if host else ""
    return f"""\
table inet {TABLE} {{
    set {HOST_SET} {{
        type ipv4_addr
        flags interval
        {host_elements}
    }}
    chain output {{
        type filter hook output priority filter; policy drop;
        oif "lo" accept
        ip daddr {DNS_FORWARDER} meta l4proto {{ tcp, udp }} th dport 53 accept
        ip daddr {{ {blocked} }} reject with icmpx type admin-prohibited
        ip daddr @{HOST_SET} reject with icmpx type admin-prohibited
        meta nfproto ipv4 accept
        reject with icmpx type admin-prohibited
    }}
}}
"""


def host_set_update(host: Sequence[ipaddress.IPv4Network]) -> str:
    """Replace the host set of a running instance (the host gained or lost an address)."""
    lines = [f"flush set inet {TABLE} {HOST_SET}"]
    if host:
        lines.append(f"add element inet {TABLE} {HOST_SET} {{ {_elements(host)} }}")
    return "\n".join(lines) + "\n"
