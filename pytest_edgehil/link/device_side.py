"""What the device side of the protocol shares, whichever program plays it (`edgehil agent` on a Linux
board, the device twins): a request it refuses becomes an ERROR frame with a code, and the device stays up."""

from __future__ import annotations

from pytest_edgehil.link.messages import ErrorCode


class DeviceRefusal(Exception):
    """Raised by a device-side request handler; the server answers ERROR(`code`, text) instead of a reply."""

    def __init__(self, code: ErrorCode, text: str) -> None:
        super().__init__(text)
        self.code = code
