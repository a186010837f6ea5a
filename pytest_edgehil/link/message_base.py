"""The base of every protocol message and the registry binding type codes to message classes.

Separate from `messages.py` so that optional message modules (`energy_messages.py`) register themselves
without importing `messages.py`, which imports them so that `MESSAGE_TYPES` always holds every type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, TypeVar

from pytest_edgehil.errors import ProtocolError
from pytest_edgehil.link.framing import MsgType


class Message:
    """Base of every message dataclass: a fixed MsgType and a payload codec."""

    msg_type: ClassVar[MsgType]

    def encode_payload(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode_payload(cls, payload: bytes) -> Message:
        raise NotImplementedError


MESSAGE_TYPES: dict[int, type[Message]] = {}
M = TypeVar("M", bound=type[Message])


def register(msg_type: MsgType) -> Callable[[M], M]:
    """Class decorator: bind a message dataclass to its type code (duplicates are a bug)."""
    def bind(cls: M) -> M:
        if msg_type in MESSAGE_TYPES:
            raise ProtocolError(f"{msg_type.name} is already bound to {MESSAGE_TYPES[msg_type].__name__}")
        cls.msg_type = msg_type
        MESSAGE_TYPES[msg_type] = cls
        return cls
    return bind
