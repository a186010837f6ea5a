"""The analyzer twin's SCPI command dispatch: routing a received header to what the instrument does.

A header (any SCPI form) names an IEEE 488.2 common command, the error queue, a route the driver
declares (start/stop, fetch, status, measure) or a setting of its table. Settings are kept as state
(`state`, keyed by `twin_dialect.state_key`); common commands act on the status registers; program
routes arm or abort the `Digitizer`. An error is queued (with its ESR bit) and a query in error
sends nothing, as IEEE 488.2 requires, so the client's next reply is never shifted. The caller (the
twin) holds its lock around `dispatch` and does the blocking waits outside it.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_edgehil.instruments import scpi
from pytest_edgehil.instruments.dialect import BYTE_ORDER_SETTING, FORMAT_SETTING
from pytest_edgehil.instruments.scpi import Setting, Value
from pytest_edgehil.sim.analyzer_acquisition import Digitizer, interleave
from pytest_edgehil.sim.analyzer_faults import ACQUISITION, FaultPlan
from pytest_edgehil.sim.fastlog_stream import FastLogStream
from pytest_edgehil.sim.scpi_server import ScpiCommand
from pytest_edgehil.sim.scpi_status import StatusRegisters
from pytest_edgehil.sim.status_bits import bits_for
from pytest_edgehil.sim.timeline import ActivityTimeline
from pytest_edgehil.sim.twin_dialect import (
    DRIVERS,
    ERROR_QUEUE,
    Route,
    ScpiFault,
    TwinDialect,
    normalized_args,
    split_header,
    state_key,
    without_channel_list,
)

#: `STATus:PRESet` in the forms a client may send (upper case, as the server passes headers on).
_STATUS_PRESET_FORMS = frozenset({"STAT:PRES", "STATUS:PRES", "STAT:PRESET", "STATUS:PRESET"})

SCALAR_WINDOW_S = 1e-3  # MEASure queries average the supply over the last millisecond of the timeline

Handler = Callable[[ScpiCommand], bytes | None]


class CommandSet:
    """What each header does on one twin: its settings state, common commands and declared routes."""

    def __init__(self, dialect: TwinDialect, *, timeline: ActivityTimeline, status: StatusRegisters,
                 digitizer: Digitizer, faults: FaultPlan, stream: FastLogStream | None = None) -> None:
        self.dialect = dialect
        self.stream = stream  # the NGM202's FastLog; None where the dialect captures triggered windows
        self.timeline = timeline
        self.status = status
        self.digitizer = digitizer
        self.faults = faults
        self.state: dict[str, Value] = dict(dialect.defaults)
        # The status bits as the instrument's manual defines them, not as the driver declares them.
        name = next((key for key, driver in DRIVERS.items() if driver is dialect.driver), None)
        self.status_bits = bits_for(name, (dialect.driver.waiting_bit, dialect.driver.measuring_bit))
        # IEEE 488.2 common commands (query form, command form); None: that form is undefined.
        self.common: dict[str, tuple[Callable[[ScpiCommand], bytes] | None,
                                     Callable[[ScpiCommand], None] | None]] = {
            "*IDN": (lambda c: dialect.idn.encode(), None),
            "*RST": (None, self._reset),
            "*CLS": (None, lambda c: status.clear()),
            "*OPC": (lambda c: b"1", lambda c: digitizer.opc()),
            "*WAI": (None, lambda c: None),  # the waiting is done by the twin, outside the lock
            "*ESR": (lambda c: str(status.read_esr()).encode(), None),
            "*ESE": (lambda c: str(status.ese).encode(), lambda c: self._mask(c, "ese")),
            "*STB": (lambda c: str(status.stb()).encode(), None),
            "*SRE": (lambda c: str(status.sre).encode(), lambda c: self._mask(c, "sre")),
            "*TRG": (None, self._bus_trigger),
            "*TST": (lambda c: b"0", None),  # self-test passed
        }
        self._routes: dict[str, Callable[[Route, ScpiCommand], bytes | None]] = {
            "program": self._program, "fetch": self._fetch, "status": self._status, "measure": self._measure,
            "status_event": self._status_event}

    def key(self, command: ScpiCommand) -> tuple[str, Route | None]:
        """The short form of the declared header `command` names (its own header if none), and its route."""
        if command.header.startswith("*"):
            return command.header, None
        route = self.dialect.route(command.header)
        if route is not None:
            return route.key, route
        found = self.dialect.setting(command.header)
        if found is not None:
            return found[0].short(found[1]), None
        if ERROR_QUEUE.match(split_header(command.header)) is not None:
            return ERROR_QUEUE.short(), None
        return command.header, None

    def dispatch(self, command: ScpiCommand, key: str, route: Route | None) -> bytes | None:
        """The reply, or None; an error is queued and a query in error sends nothing. A command that
        changes the output voltage (setpoint, output on/off, *RST) is a voltage step the digitizer's
        voltage-level trigger watches."""
        before_v = self.output_voltage_v()
        reply = self._dispatch(command, key, route)
        after_v = self.output_voltage_v()
        if after_v != before_v:
            self.digitizer.voltage_step(before_v, after_v)
        return reply

    def output_voltage_v(self) -> float:
        """The voltage at the output (V): the programmed setpoint with the output on, 0 with it off."""
        roles = self.dialect.driver.roles
        return float(self.state[roles.voltage]) if self.state[roles.output] == "ON" else 0.0

    def _dispatch(self, command: ScpiCommand, key: str, route: Route | None) -> bytes | None:
        try:
            if key in self.common:
                query, action = self.common[key]
                if command.is_query and query is not None:
                    return query(command)
                if not command.is_query and action is not None:
                    action(command)
                    return None
                raise ScpiFault(scpi.UNDEFINED_HEADER)
            if key == ERROR_QUEUE.short():
                if not command.is_query:
                    raise ScpiFault(scpi.UNDEFINED_HEADER)
                return scpi.format_error(*self.status.next_error()).encode()
            if route is not None:
                return self._routes[route.kind](route, command)
            found = self.dialect.setting(command.header)
            if found is None:
                return self._status_tree(command)
            return self._setting(found[0], found[1], command)
        except ScpiFault as fault:
            self.status.queue(fault.error)
            return None

    def external_polarity(self) -> str | None:
        """"POS" or "NEG" once the EXT source can fire, None while it cannot: where the driver declares
        a trigger-input pin (`roles.trigger_input`), EXT fires only from a pin configured so."""
        inputs = self.dialect.driver.roles.trigger_input
        if not inputs:
            return "POS"
        (function, value), polarity = inputs[0], inputs[1][0] if len(inputs) > 1 else None
        setting = self.dialect.settings[function]
        wanted = setting.choice(value)
        for pin in range(1, setting.suffixes + 1):
            if self.state[state_key(setting, pin)] == wanted:
                if polarity is None:
                    return "POS"
                edge = str(self.state[state_key(self.dialect.settings[polarity], pin)])
                return "NEG" if edge.startswith("NEG") else "POS"
        return None

    # --- settings and common commands ----------------------------------------------------------------

    def _check_channels(self, args: tuple[str, ...]) -> tuple[str, ...]:
        """Strip a trailing `(@n)` channel list after checking the channel exists."""
        if args and args[-1].startswith("(@"):
            for part in args[-1][2:-1].replace(":", ",").split(","):
                if not part.strip().isdigit() or not 1 <= int(part) <= self.dialect.driver.max_channel:
                    raise ScpiFault(scpi.HARDWARE_MISSING)
        return without_channel_list(args)

    def _setting(self, setting: Setting, suffix: int, command: ScpiCommand) -> bytes | None:
        args = self._check_channels(command.args)
        key = state_key(setting, suffix)
        if command.is_query:
            value = self.state[key]
            if args and not setting.choices:  # `VOLT? MAX`: the limit, as SCPI-99 answers it, not the setting
                try:
                    value = self.dialect.normalize(setting, self._number(setting, args[0]), self.state)
                except ValueError:
                    raise ScpiFault(scpi.DATA_TYPE_ERROR) from None
                if args[0].strip().upper() not in ("MIN", "MINIMUM", "MAX", "MAXIMUM", "DEF", "DEFAULT"):
                    raise ScpiFault(scpi.ILLEGAL_PARAMETER)
            if setting.choices and set(setting.choices) == {"ON", "OFF"}:
                return b"1" if value == "ON" else b"0"  # SCPI booleans are answered 1/0
            return (f"{value:+.8E}" if isinstance(value, float) else str(value)).encode()
        if not args:
            raise ScpiFault(scpi.MISSING_PARAMETER)
        try:
            value = self._number(setting, args[0]) if not setting.choices else setting.parse(args[0])
        except ValueError:
            raise ScpiFault(scpi.DATA_TYPE_ERROR) from None
        if not setting.accepts(value):
            raise ScpiFault(scpi.ILLEGAL_PARAMETER if setting.choices else scpi.DATA_OUT_OF_RANGE)
        self.state[key] = self.dialect.normalize(setting, value, self.state)
        return None

    @staticmethod
    def _number(setting: Setting, text: str) -> Value:
        """A numeric parameter: decimal in any SCPI form (`5`, `3.3`, `2.048E-5`) or MINimum/MAXimum/DEFault."""
        token = text.strip().upper()
        named = {"MIN": setting.minimum, "MINIMUM": setting.minimum, "MAX": setting.maximum,
                 "MAXIMUM": setting.maximum, "DEF": setting.reset, "DEFAULT": setting.reset}
        if token in named:
            value = named[token]
            if value is None:
                raise ValueError(token)
            return setting.parse(str(value))
        return setting.parse(text)

    def _mask(self, command: ScpiCommand, register: str) -> None:
        try:
            value = int(float(command.args[0])) if command.args else -1
        except ValueError:
            raise ScpiFault(scpi.DATA_TYPE_ERROR) from None
        if not 0 <= value <= 255:
            raise ScpiFault(scpi.DATA_OUT_OF_RANGE)
        setattr(self.status, register, value)

    def _reset(self, command: ScpiCommand) -> None:
        self.digitizer.abort()
        if self.stream is not None:
            self.stream.stop()
        self.state.clear()
        self.state.update(self.dialect.defaults)
        self.digitizer.data = None

    def _bus_trigger(self, command: ScpiCommand) -> None:
        if not self.digitizer.bus_trigger():
            raise ScpiFault(scpi.TRIGGER_IGNORED)

    # --- declared routes -----------------------------------------------------------------------------

    def _program(self, route: Route, command: ScpiCommand) -> None:
        """A start/stop command the driver declares: start, clear the buffer, or abort."""
        action = self._action(route, command)
        if self.stream is not None:  # FastLog: FLOG 1 starts the stream, FLOG 0 stops it
            if action == "init":
                drop = self.faults.take(("lost-chunk",), {ACQUISITION})
                clip = self.faults.take(("clip",), {ACQUISITION})
                self.stream.start(self.dialect.plan(self.state), drop_chunk=None if drop is None else 1,
                                  clip_overload=None if clip is None else clip.overload,
                                  channel=int(self.state.get(self.dialect.driver.roles.channel_select or "", 1)))
            else:
                self.stream.stop()
            return
        if action == "init":
            plan = self.dialect.plan(self.state)
            clip = self.faults.take(("clip",), {ACQUISITION})
            self.digitizer.arm(plan, trigger_lost=self.faults.take(("lost-trigger",), {ACQUISITION}) is not None,
                               clip_overload=clip.overload if clip is not None else None)
        elif action == "clear":
            self.digitizer.data = None
        else:
            self.digitizer.abort()

    def _action(self, route: Route, command: ScpiCommand) -> str:
        """"init", "clear" or "abort": what a program route's arguments ask for."""
        if command.is_query:
            raise ScpiFault(scpi.UNDEFINED_HEADER)
        args = normalized_args(self._check_channels(command.args))
        action = dict(route.actions).get(args)
        if action is None and len(args) == 1:  # a boolean written ON/OFF instead of 1/0
            action = dict(route.actions).get(({"ON": "1", "OFF": "0"}.get(args[0], args[0]),))
        if action is None:
            raise ScpiFault(scpi.ILLEGAL_PARAMETER)
        return action

    def is_abort(self, command: ScpiCommand) -> bool:
        """Whether `command` is the driver's declared stop command (read before it runs in turn)."""
        _, route = self.key(command)
        if route is None or route.kind != "program":
            return False
        try:
            return self._action(route, command) == "abort"
        except ScpiFault:
            return False

    def _measure(self, route: Route, command: ScpiCommand) -> bytes:
        """A scalar reading: the supply's mean over the timeline's last SCALAR_WINDOW_S (idle power
        when nothing runs), at the programmed voltage; 0 with the output off."""
        if not command.is_query:
            raise ScpiFault(scpi.UNDEFINED_HEADER)
        self._check_channels(command.args)
        voltage_v = self.output_voltage_v()
        end_s = self.timeline.end_s
        power_w = self.timeline.energy_between(end_s - SCALAR_WINDOW_S, end_s) / SCALAR_WINDOW_S
        if voltage_v <= 0:
            power_w = 0.0
        value = {"voltage": voltage_v, "power": power_w,
                 "current": power_w / voltage_v if voltage_v > 0 else 0.0}[route.quantity]
        return f"{value:+.8E}".encode()

    def _status(self, route: Route, command: ScpiCommand) -> bytes:
        if not command.is_query:
            raise ScpiFault(scpi.UNDEFINED_HEADER)
        self._check_channels(command.args)
        if self.status.tree is not None:  # ISUMmary<n>:CONDition: bit 12 while a FastLog chunk waits unread
            return str(self.status.tree.condition(self._route_suffix(route, command))).encode()
        output_on = self.state[self.dialect.driver.roles.output] == "ON"
        return str(self.status_bits.condition(self.digitizer.status_name(), output_on=output_on)).encode()

    def _status_event(self, route: Route, command: ScpiCommand) -> bytes:
        """ISUMmary<n>:EVENt: bit 12 latched when a FastLog chunk is offered, cleared by the read."""
        tree = self.status.tree
        if not command.is_query or tree is None:
            raise ScpiFault(scpi.UNDEFINED_HEADER)
        self._check_channels(command.args)
        found = tree.lookup(command.header)
        if found is None:
            raise ScpiFault(scpi.HARDWARE_MISSING)
        return str(tree.read(*found)).encode()

    @staticmethod
    def _route_suffix(route: Route, command: ScpiCommand) -> int:
        suffixes = route.header.match(split_header(command.header)) or (1,)
        return suffixes[0]

    def _status_tree(self, command: ScpiCommand) -> bytes | None:
        """The OPERation register hierarchy where the twin keeps one (the NGM202): EVENt and CONDition
        queries, ENABle/PTRansition/NTRansition set and query, STATus:PRESet; -113 for anything else."""
        tree = self.status.tree
        if tree is not None and command.header in _STATUS_PRESET_FORMS and not command.is_query:
            tree.preset()
            return None
        found = None if tree is None else tree.lookup(command.header)
        if tree is None or found is None:
            raise ScpiFault(scpi.UNDEFINED_HEADER)
        register, field = found
        if command.is_query:
            return str(tree.read(register, field)).encode()
        if not command.args:
            raise ScpiFault(scpi.MISSING_PARAMETER)
        try:
            value = int(float(command.args[0]))
        except ValueError:
            raise ScpiFault(scpi.DATA_TYPE_ERROR) from None
        if not 0 <= value <= 65535:
            raise ScpiFault(scpi.DATA_OUT_OF_RANGE)
        try:
            tree.write(register, field, value)
        except ValueError:  # CONDition and EVENt are query-only
            raise ScpiFault(scpi.UNDEFINED_HEADER) from None
        return None

    def _fetch(self, route: Route, command: ScpiCommand) -> bytes:
        """Answer one of the driver's declared fetch queries with the columns it declares. The
        acquisition has finished by now (the twin waited); with no data (never started, aborted)
        the error is queued and nothing is sent, as for any query in error."""
        fetch = route.fetch
        assert fetch is not None  # every fetch route carries its query
        if not command.is_query:
            raise ScpiFault(scpi.UNDEFINED_HEADER)
        binary = fetch.binary if fetch.binary is not None else self.state[FORMAT_SETTING] == "REAL"
        if normalized_args(self._check_channels(command.args)) != route.args:
            raise ScpiFault(scpi.ILLEGAL_PARAMETER)
        if self.stream is not None:  # FLOG:DATA?: the chunk on offer (the twin waited for one)
            chunk = self.stream.take()
            if chunk is None:
                raise ScpiFault(scpi.DATA_STALE)
            return scpi.encode_block(scpi.float32_payload(chunk.pairs, big_endian=False))
        data = self.digitizer.data
        if data is None:
            raise ScpiFault(scpi.DATA_STALE)
        if ("voltage" in fetch.columns and not data.plan.digitize_voltage) or (
                "current" in fetch.columns and not data.plan.digitize_current):
            raise ScpiFault(scpi.SETTINGS_CONFLICT)  # that function was not digitized
        values = interleave(data, fetch)
        if not binary:
            return scpi.format_ascii_floats(values)
        big_endian = (fetch.big_endian if fetch.big_endian is not None
                      else self.state[BYTE_ORDER_SETTING] == "NORM")
        return scpi.encode_block(scpi.float32_payload(values, big_endian=big_endian))
