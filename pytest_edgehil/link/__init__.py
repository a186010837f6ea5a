"""The device link: framing, protocol messages, the host client and its traffic log."""
