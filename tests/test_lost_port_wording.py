"""A lost port's message says how the plugin finds that board again: by `usb_serial` for a USB board, by
reconnecting to the URL (its agent) for a `socket://` board, which has no USB serial number."""

from __future__ import annotations

import pytest

from pytest_edgehil.errors import DeviceError
from pytest_edgehil.link.client import DeviceClient


@pytest.mark.parametrize(("port", "said", "not_said"), [
    ("socket://127.0.0.1:5000", "reconnecting to socket://127.0.0.1:5000", "usb_serial"),
    ("/dev/ttyACM0", "by `usb_serial`", "reconnecting"),
])
def test_the_lost_message_names_how_the_board_comes_back(port: str, said: str, not_said: str) -> None:
    client = DeviceClient(port, name="b")
    client._lost = "the connection dropped"  # a real drop needs the board gone; the message is what is checked
    with pytest.raises(DeviceError, match="called after port") as info:
        client._check_usable("RUN")
    assert said in str(info.value) and not_said not in str(info.value)
