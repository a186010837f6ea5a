"""Boards in a labgrid farm: reserved and locked through labgrid's coordinator, released at session end.

A lab file's device may name `place = "coral-1"` or `tags = { board = "coral" }` instead of a port
(docs/lab-farm.md). At bring-up the bench asks the coordinator for a reservation with that filter (a
place name is labgrid's `name=` filter), waits for it to be allocated (up to `edgehil_lock_timeout`,
telling `on_wait` who holds the matching places), acquires the place — one owner per board, visible to
every labgrid user — and opens the place's `NetworkSerialPort` (ser2net on the exporter's host) as a
pyserial URL: `rfc2217://host:port`, or `socket://host:port` for a raw TCP port. The place's tags may
carry the power wiring (`analyzer`, `analyzer_channel`, `supply_v`, `current_range_a`), so it lives in the
farm's configuration, not in every lab file. At session end (also after Ctrl-C: `Bench.close` runs in
the session's teardown) the place is released and the reservation cancelled.

labgrid is an optional extra (`pytest-edgehil[labgrid]`), imported only here (`farm_places` checks that it
is installed) and only when a lab names places. What a lab's farm device asks for and what its place gives
it (filter, URL, wiring from tags) are in `farm_places`. labgrid's client is asyncio; it runs on a private
event loop in a daemon thread so the gRPC stream (place and resource updates, keepalives) lives while tests
run, and this module's calls stay blocking.
The labgrid identity is `HOST/USER` (labgrid's `LG_HOSTNAME`/`LG_USERNAME` override them; a CI job sets
`LG_USERNAME` to name itself). A process killed with SIGKILL leaves its place acquired: the coordinator
keeps acquisitions across disconnects, by design (docs/lab-farm.md gives the command that clears it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pytest_edgehil.config.lab import DeviceConfig
from pytest_edgehil.errors import ConfigError, DeviceBusy, DeviceError

# What a lab's farm device asks for and what its place gives it live in farm_places; importable from here,
# where they were first (bench, device_under_test and users' code import them from pytest_edgehil.farm).
from pytest_edgehil.farm_places import (
    COORDINATOR_ENV,
    DEFAULT_PORT,
    INSTALL,
    PlaceLease,
    apply_place,
    check_farm_lab,
    coordinator_address,
    describe_filter,
    place_filter,
    require_labgrid,
    serial_url,
)

__all__ = ["COORDINATOR_ENV", "DEFAULT_PORT", "INSTALL", "Farm", "PlaceLease", "apply_place", "check_farm_lab",
           "coordinator_address", "describe_filter", "place_filter", "require_labgrid", "serial_url"]

POLL_S = 0.25  # how often a waiting reservation is polled (the coordinator refreshes it on each poll)
PROGRESS_EVERY_S = 10.0  # how often a waiting bring-up says what it waits for
RPC_TIMEOUT_S = 15.0  # one coordinator call; the coordinator answers in milliseconds on a LAN
PORT_WAIT_S = 15.0  # the exporter starts ser2net when the place is acquired, then publishes its TCP port

T = TypeVar("T")


class Farm:
    """A connection to one labgrid coordinator; acquires and releases places for the bench's devices.

    Raises DeviceError when the coordinator cannot be reached, DeviceBusy when no matching place comes
    free within the wait, ConfigError when no place of the farm can ever match.
    """

    def __init__(self, address: str) -> None:
        require_labgrid(f"coordinator {address}")
        self.address = address
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="edgehil-labgrid", daemon=True)
        self._thread.start()
        try:
            self.session = self._call(self._connect(), "connect")
        except BaseException:
            self._stop_loop()
            raise
        self.owner = f"{self.session.gethostname()}/{self.session.getuser()}"
        # The places this connection holds, with the device holding each: another device of this run waiting
        # for one of them would wait for itself (it is released at session end), whatever the wait's bound.
        self._held: dict[str, str] = {}

    async def _connect(self) -> Any:
        from labgrid.remote.client import ClientSession
        from labgrid.util.proxy import proxymanager

        session = ClientSession(proxymanager.get_grpc_address(self.address, default_port=DEFAULT_PORT), self._loop)
        await session.start()
        return session

    def _call(self, coro: Coroutine[Any, Any, T], what: str, timeout_s: float = RPC_TIMEOUT_S) -> T:
        return self._result(asyncio.run_coroutine_threadsafe(coro, self._loop), what, timeout_s)

    def _result(self, future: concurrent.futures.Future[T], what: str, timeout_s: float = RPC_TIMEOUT_S,
                cancel: bool = True) -> T:
        """The call's answer; DeviceError (cause: the RPC error) when the coordinator refused or did not
        answer. `cancel=False` leaves a call that timed out running, for `_granted` to wait for."""
        from labgrid.remote.client import Error as ClientError

        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:  # the builtin TimeoutError only from Python 3.11 on
            if cancel:
                future.cancel()
            raise DeviceError(f"labgrid coordinator {self.address}: no answer to {what} within {timeout_s:g} s; "
                              "check that labgrid-coordinator runs there and the address") from None
        except ClientError as exc:
            raise DeviceError(f"labgrid coordinator {self.address}: {what} failed: {exc}; check that "
                              f"labgrid-coordinator runs there (`labgrid-client -x {self.address} places`)") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("grpc"):  # an RPC error: its details() says what the coordinator said
                details_of = getattr(exc, "details", None)
                details = details_of() if callable(details_of) else str(exc)
                raise DeviceError(f"labgrid coordinator {self.address}: {what} failed: {details}") from exc
            raise

    def _places(self) -> dict[str, Any]:
        self._call(self.session.sync_with_coordinator(), "sync")
        return dict(self.session.places)

    def holders(self, config: DeviceConfig) -> list[tuple[str, str]]:
        """Each place matching the device's filter, with who holds it: ("coral-1", "acquired by HOST/USER"),
        ("coral-2", "reserved for HOST/USER, reservation TOKEN") or ("coral-3", "free")."""
        wanted = place_filter(config)
        reservations = dict(self.reservations())
        found = []
        for name, place in sorted(self._places().items()):
            if all((place.name if k == "name" else place.tags.get(k)) == v for k, v in wanted.items()):
                if place.acquired:
                    found.append((name, f"acquired by {place.acquired}"))
                elif place.reservation:
                    owner = reservations.get(place.reservation, "?")
                    found.append((name, f"reserved for {owner}, reservation {place.reservation}"))
                else:
                    found.append((name, "free"))
        return found

    def reservations(self) -> list[tuple[str, str]]:
        """The coordinator's open reservations as (token, owner HOST/USER). Raises DeviceError."""
        return [(r.token, r.owner) for r in self._call(self._reservations(), "list reservations")]

    def _busy_text(self, config: DeviceConfig) -> str:
        return "; ".join(f"{name} held by this run's own device {self._held[name]!r}" if name in self._held
                         else f"{name} {who}" for name, who in self.holders(config))

    def _clear_hint(self, config: DeviceConfig) -> str:
        """The labgrid commands that free what a killed run left behind (docs/lab-farm.md); never one that
        would take a place from under this run's own devices."""
        hints = []
        for name, who in self.holders(config):
            if name in self._held:
                continue
            if who.startswith("acquired"):
                hints.append(f"`labgrid-client -x {self.address} -p {name} release`")
                # A killed run's reservation stays allocated to it (until ~60 s after its last poll): released
                # alone, the place would still be refused to the next run as "reserved for" the dead one.
                token = self.session.places[name].reservation
                if token:
                    hints.append(f"`labgrid-client -x {self.address} cancel-reservation {token}`")
            elif who.startswith("reserved"):
                hints.append(f"`labgrid-client -x {self.address} cancel-reservation {who.rsplit(' ', 1)[-1]}`")
        return (" If its holder was killed (SIGKILL, a lost CI runner), free it with " + " and ".join(hints)
                + " (another user's place: `release --kick`)") if hints else ""

    async def _reservations(self) -> list[Any]:
        from labgrid.remote.common import Reservation
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        response = await self.session.stub.GetReservations(pb2.GetReservationsRequest())
        return [Reservation.from_pb2(r) for r in response.reservations]

    async def _reserve(self, wanted: dict[str, str]) -> str:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        request = pb2.CreateReservationRequest(filters={"main": pb2.Reservation.Filter(filter=wanted)}, prio=0)
        return str((await self.session.stub.CreateReservation(request)).reservation.token)

    async def _poll(self, token: str) -> tuple[str, str | None]:
        from labgrid.remote.common import Reservation
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        reply = await self.session.stub.PollReservation(pb2.PollReservationRequest(token=token))
        res = Reservation.from_pb2(reply.reservation)
        places = res.allocations.get("main") or [None]
        return res.state.name, places[0]

    async def _acquire(self, place: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        await self.session.stub.AcquirePlace(pb2.AcquirePlaceRequest(placename=place))
        await self.session.sync_with_coordinator()

    async def _serial_params(self, place: str) -> dict[str, Any] | None:
        await self.session.sync_with_coordinator()
        serial = [r for (_, cls), r in self.session.get_target_resources(self.session.places[place]).items()
                  if cls == "NetworkSerialPort"]
        if len(serial) != 1:
            raise ConfigError(f"place {place!r} has {len(serial)} NetworkSerialPort resources; edgehil talks to "
                              "exactly one (match one with `labgrid-client -p PLACE add-match EXPORTER/GROUP/"
                              "NetworkSerialPort`)")
        if not serial[0].avail or not serial[0].params.get("port"):
            return None
        return dict(serial[0].params)

    def acquire(self, config: DeviceConfig, timeout_s: float = 0.0,
                on_wait: Callable[[str], None] | None = None) -> PlaceLease:
        """Reserve and acquire a place for `config`, waiting up to `timeout_s` for one to come free.

        Raises ConfigError when no place of the farm matches at all, DeviceBusy naming the holders when none
        came free in time, DeviceError when the place's serial port is not published. On any failure (Ctrl-C
        included) the reservation is cancelled and a place acquired meanwhile released.
        """
        what = f"device {config.name!r}: {describe_filter(config)}"
        wanted = place_filter(config)
        holders = self.holders(config)
        if not holders:
            raise ConfigError(f"{what}: no place of the labgrid farm at {self.address} matches; places: "
                              f"{', '.join(sorted(self._places())) or 'none'} (`labgrid-client -x {self.address} "
                              "places -v` shows their tags)")
        ours = {name: self._held[name] for name, _ in holders if name in self._held}
        if len(ours) == len(holders):
            raise ConfigError(
                f"{what}: " + ", ".join(f"{place} is held by this run's own device {device!r}"
                                        for place, device in sorted(ours.items()))
                + " until the session ends, so waiting for it cannot end: this run's devices ask for more such "
                f"places than the farm at {self.address} has ({len(holders)}). Select fewer of them (--device), "
                "add a place with these tags, or run them under pytest-xdist with --dist loadgroup, where each "
                "worker reserves a place of its own (docs/lab-farm.md)")
        token = self._create_reservation(wanted)
        place: str | None = None
        acquired: str | None = None  # set once AcquirePlace succeeded: only then is the place ours to release
        asked: concurrent.futures.Future[None] | None = None  # AcquirePlace, once sent
        try:
            deadline, next_note = time.monotonic() + max(0.0, timeout_s), time.monotonic()
            while True:
                state, place = self._call(self._poll(token), "poll the reservation")
                if state == "allocated" and place is not None:
                    break
                if state != "waiting":
                    raise DeviceError(f"{what}: reservation {token} became {state} at the coordinator")
                now = time.monotonic()
                if now >= deadline:
                    waited = f" after waiting {timeout_s:g} s" if timeout_s > 0 else ""
                    raise DeviceBusy(f"{what} is busy{waited}: {self._busy_text(config)}. Wait for that run to "
                                     "finish or stop it, or set the ini value edgehil_lock_timeout = SECONDS to "
                                     f"wait longer.{self._clear_hint(config)} (docs/lab-farm.md)")
                if on_wait is not None and now >= next_note:
                    on_wait(f"{what} is busy: {self._busy_text(config)}; waiting up to "
                            f"{deadline - now:.0f} s more (edgehil_lock_timeout)")
                    next_note = now + PROGRESS_EVERY_S
                time.sleep(min(POLL_S, max(0.0, deadline - now)))
            asked = asyncio.run_coroutine_threadsafe(self._acquire(place), self._loop)
            self._result(asked, f"acquire place {place!r}", cancel=False)
            acquired = place
            deadline = time.monotonic() + PORT_WAIT_S
            while (params := self._call(self._serial_params(place), f"read place {place!r}")) is None:
                if time.monotonic() > deadline:
                    serial_url({}, place)  # raises, naming what is missing
                time.sleep(POLL_S)
            tags = tuple(sorted(self.session.places[place].tags.items()))
            self._held[place] = config.name
            return PlaceLease(place=place, host=str(params["host"]), url=serial_url(params, place), token=token,
                              owner=self.owner, tags=tags)
        except BaseException:
            if acquired is None and asked is not None and place is not None:
                acquired = self._granted(asked, place)
            self._give_back(acquired, token)
            raise

    def _create_reservation(self, wanted: dict[str, str]) -> str:
        """The token of a new reservation for `wanted`. On the way out of an interrupt (Ctrl-C, SIGTERM) or a
        timeout while the request was in flight, a reservation the coordinator created meanwhile is cancelled:
        kept, it would be allocated to a run that is gone, refusing the place to the next run for the 60 s it
        takes to lapse. Raises as `_result`, or DeviceError naming the command when that cancel fails."""
        asked = asyncio.run_coroutine_threadsafe(self._reserve(wanted), self._loop)
        try:
            return self._result(asked, "create a reservation", cancel=False)
        except BaseException:
            token = self._created(asked)
            if token is not None:
                self._give_back(None, token)
            raise

    @staticmethod
    def _created(asked: concurrent.futures.Future[str]) -> str | None:
        """The token of the CreateReservation request in `asked` once the coordinator answers it (bounded:
        an interrupt or a timeout left that unknown); None when it was refused or is still unanswered (then
        there is no token to cancel, and an unpolled reservation lapses at the coordinator after 60 s)."""
        try:
            return asked.result(RPC_TIMEOUT_S)
        except BaseException:  # noqa: BLE001 - refused, unanswered or interrupted again: nothing to cancel
            return None

    @staticmethod
    def _granted(asked: concurrent.futures.Future[None], place: str) -> str | None:
        """`place` when the AcquirePlace request in `asked` was granted after all, else None. An interrupt
        (Ctrl-C, SIGTERM) or a timeout while the request was in flight leaves that unknown, and a place
        granted to a run that is gone stays acquired (labgrid keeps acquisitions): wait for the answer,
        bounded, and treat a request still unanswered as granted (its release then fails, naming the fix)."""
        try:
            asked.result(RPC_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            return place
        except BaseException:  # noqa: BLE001 - refused (or interrupted again): nothing of ours to release
            return None
        return place

    def current_url(self, lease: PlaceLease) -> str:
        """The pyserial URL the place's board is served at now. labgrid's exporter republishes a board on a
        new TCP port when it restarts ser2net (the exporter restarted, a USB-CDC board re-enumerated), so a
        board that was lost is looked for here, not at the URL it had. Raises DeviceError while the place's
        serial port is not published (a caller finding the board again polls until it is)."""
        try:
            params = self._call(self._serial_params(lease.place), f"read place {lease.place!r}")
        except ConfigError as exc:  # its exporter is away (restarting): no NetworkSerialPort for now
            raise DeviceError(str(exc)) from exc
        return serial_url(params or {}, lease.place)

    def _give_back(self, place: str | None, token: str) -> None:
        errors = []
        if place is not None:
            self._held.pop(place, None)
            errors += self._try(self._release(place), f"release place {place!r}")
        errors += self._try(self._cancel(token), f"cancel reservation {token}")
        if errors:
            raise DeviceError(f"labgrid coordinator {self.address}: {'; '.join(errors)}; free it with "
                              f"`labgrid-client -x {self.address} -p {place or 'PLACE'} release` and "
                              f"`labgrid-client -x {self.address} cancel-reservation {token}`")

    def _try(self, coro: Coroutine[Any, Any, None], what: str) -> list[str]:
        try:
            self._call(coro, what)
        except DeviceError as exc:
            return [str(exc)]
        return []

    async def _release(self, place: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        await self.session.stub.ReleasePlace(pb2.ReleasePlaceRequest(placename=place))
        await self.session.sync_with_coordinator()

    async def _cancel(self, token: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        await self.session.stub.CancelReservation(pb2.CancelReservationRequest(token=token))

    def release(self, lease: PlaceLease) -> None:
        """Release the place and cancel its reservation. Raises DeviceError with the commands that free it."""
        self._give_back(lease.place, lease.token)

    def close(self) -> None:
        """Close the coordinator connection (places stay as they are: release them first)."""
        try:
            self._call(self._disconnect(), "disconnect", timeout_s=5.0)
        finally:
            self._stop_loop()

    async def _disconnect(self) -> None:
        await self.session.stop()
        await self.session.close()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()
