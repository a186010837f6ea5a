"""The device side for Linux-class boards (Jetson, Raspberry Pi, any Linux machine): `edgehil agent`.

Serves the framed protocol over TCP behind a shared-token handshake (`server`), runs models with LiteRT on
the board's CPU (`litert_device`), lists the kernel's on-board power readers (`power`), and declares the
camera backends it knows (`backends`). Never imports `pytest_edgehil.sim`: it is a board, not a twin.
"""
