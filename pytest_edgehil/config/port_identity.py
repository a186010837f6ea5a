"""Which board a lab file's `port` names, whatever way it is spelled: the key of its cross-process lock and
of the start-up check that one board is not two devices of a run.

A local port is the device node its links resolve to (a /dev/serial/by-id name is its /dev/ttyACM node). A
network port (`socket://HOST:PORT`, `rfc2217://HOST:PORT`: an on-board agent, ser2net on an exporter, a
labgrid place's NetworkSerialPort) is one TCP endpoint: its host is taken from the URL as labgrid takes it
(`urllib.parse`: case folded, IPv6 brackets dropped) and resolved to the address a connection goes to, with
every loopback address (`localhost`, 127.0.0.0/8, ::1, a Debian host's own name on 127.0.1.1) one machine.
The scheme and the URL's options (`?ign_set_control`) choose how pyserial talks to the endpoint, not which
board is there, so they are left out. A host that does not resolve keeps its folded name: the open that
follows names it and says what failed.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

NETWORK_SCHEMES = ("socket", "rfc2217")  # pyserial's URL handlers that reach a board over TCP
LOOPBACK = "loopback"  # the identity host of every loopback address


def port_identity(port: str) -> str:
    """The board behind `port`: a local path with its links resolved, `tcp://HOST:PORT` for a network port
    (HOST an address, or `loopback`), any other URL as it is."""
    if "://" not in port:
        return os.path.realpath(port)
    parts = urlsplit(port)
    try:
        tcp_port = parts.port
    except ValueError:  # not a port number: pyserial refuses the URL at open, naming it
        return port
    if parts.scheme.lower() not in NETWORK_SCHEMES or not parts.hostname or tcp_port is None:
        return port
    return f"tcp://{_host_identity(parts.hostname, tcp_port)}:{tcp_port}"


def _host_identity(host: str, tcp_port: int) -> str:
    """The address a connection to `host` goes to (the first getaddrinfo gives, as socket.create_connection
    tries it first), `loopback` for any loopback address, else `host` itself when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, tcp_port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return host
    if not infos:
        return host
    address = ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0])  # an IPv6 scope (%eth0) is no address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return LOOPBACK if address.is_loopback else address.compressed
