"""Challenge–response between a host and an on-board agent, before the framed protocol starts.

Both sides hold one shared token (a file, `edgehil agent --new-token` writes one); it never crosses
the wire. Each side proves it holds it with an HMAC-SHA256 over both sides' fresh random nonces, so a
recorded exchange cannot be replayed and the host knows it reached the agent, not something else
listening on that port. Four text lines, then the framed protocol (docs/hardware.md):

    host  → agent  EDGEHIL-HOST 1
    agent → host   EDGEHIL-AGENT 1 <agent nonce, 32 hex>
    host  → agent  AUTH <host nonce, 32 hex> <HMAC(token, "host" | agent nonce | host nonce), 64 hex>
    agent → host   OK <HMAC(token, "agent" | agent nonce | host nonce)>     or   DENIED <reason>

The host speaks first: pyserial's `socket://` discards whatever arrived before its open() returned, so
an agent that greeted first would race the host's port open and lose its greeting.

No I/O here beyond the two functions that drive a connection through `read_line`/`write` callables, so
the agent (a socket) and the host (a pyserial `socket://` port) share this module, as they share the
framing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from pytest_edgehil.errors import AuthRefused, ConfigError

HOST_HELLO = "EDGEHIL-HOST"
GREETING = "EDGEHIL-AGENT"
AUTH_VERSION = 1
NONCE_BYTES = 16
MAX_LINE = 256  # a handshake line is far shorter; anything longer is not a host of ours
TOKEN_BYTES = 32


def proof(token: bytes, role: str, agent_nonce: bytes, host_nonce: bytes) -> str:
    """HMAC-SHA256 (hex) of `role` ("host" or "agent") and both nonces under the shared token."""
    return hmac.new(token, role.encode() + b"|" + agent_nonce + b"|" + host_nonce, hashlib.sha256).hexdigest()


def greeting(agent_nonce: bytes) -> str:
    return f"{GREETING} {AUTH_VERSION} {agent_nonce.hex()}\n"


def host_handshake(token: bytes, read_line: Callable[[], str], write: Callable[[bytes], None], *,
                   where: str) -> None:
    """The host's side: answer the agent's challenge, check the agent's proof. AuthRefused naming `where`
    (device and port) and what to check, when the agent refuses or cannot prove the token."""
    write(f"{HOST_HELLO} {AUTH_VERSION}\n".encode())
    line = read_line()
    parts = line.split()
    if parts[:1] == ["DENIED"]:
        raise AuthRefused(f"{where}: the agent refused this host: {' '.join(parts[1:]) or 'no reason'}")
    if len(parts) != 3 or parts[0] != GREETING:
        raise AuthRefused(f"{where}: expected the agent's greeting '{GREETING} {AUTH_VERSION} <nonce>', got "
                          f"{line[:60]!r}. Is an edgehil agent listening there (not firmware or ser2net)?")
    if parts[1] != str(AUTH_VERSION):
        raise AuthRefused(f"{where}: the agent speaks handshake version {parts[1]}, this host {AUTH_VERSION}; "
                          "install matching pytest-edgehil releases on both")
    try:
        agent_nonce = bytes.fromhex(parts[2])
    except ValueError:
        agent_nonce = b""
    if len(agent_nonce) != NONCE_BYTES:
        raise AuthRefused(f"{where}: the agent's nonce {parts[2][:40]!r} is not {NONCE_BYTES} bytes of hex")
    host_nonce = secrets.token_bytes(NONCE_BYTES)
    write(f"AUTH {host_nonce.hex()} {proof(token, 'host', agent_nonce, host_nonce)}\n".encode())
    answer = read_line().split()
    if answer[:1] == ["DENIED"]:
        raise AuthRefused(f"{where}: the agent refused this host: {' '.join(answer[1:]) or 'no reason'}. The "
                          "lab file's `token_file` must hold the token the agent was started with")
    if len(answer) != 2 or answer[0] != "OK" or not hmac.compare_digest(
            answer[1], proof(token, "agent", agent_nonce, host_nonce)):
        raise AuthRefused(f"{where}: the peer did not prove the shared token ({' '.join(answer)[:60]!r}): it is "
                          "not the agent started with this token. Check the address and the token file")


def agent_check(token: bytes, agent_nonce: bytes, line: str) -> tuple[bool, str]:
    """The agent's side, on the host's AUTH line: (accepted, reply line to send)."""
    parts = line.split()
    if len(parts) != 3 or parts[0] != "AUTH":
        return False, "DENIED expected 'AUTH <nonce> <proof>'\n"
    try:
        host_nonce = bytes.fromhex(parts[1])
    except ValueError:
        host_nonce = b""
    if len(host_nonce) != NONCE_BYTES:
        return False, "DENIED malformed nonce\n"
    if not hmac.compare_digest(parts[2], proof(token, "host", agent_nonce, host_nonce)):
        return False, "DENIED wrong token\n"
    return True, f"OK {proof(token, 'agent', agent_nonce, host_nonce)}\n"


def read_token(path: Path | str, *, what: str) -> bytes:
    """The shared token from `path` (hex text, whitespace stripped). ConfigError naming `what`, the path
    and how to make one, when it is missing, empty or readable by others."""
    file = Path(path).expanduser()
    try:
        mode = file.stat().st_mode
        text = file.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read the agent token {file}: {exc}. Create it with "
                          f"`edgehil agent --new-token --token-file {file}` (on the board; copy it here)") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{what}: the agent token {file} is readable by others (mode {stat.filemode(mode)}); "
                          f"`chmod 600 {file}`")
    if not text:
        raise ConfigError(f"{what}: the agent token {file} is empty; write one with `edgehil agent --new-token`")
    return text.encode()


def write_new_token(path: Path | str) -> Path:
    """Write a fresh random token (0600, parents created) and return the path."""
    file = Path(path).expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(TOKEN_BYTES) + "\n")
    os.chmod(file, 0o600)
    return file
