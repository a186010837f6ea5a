"""The analyzer twin's SCPI dialects, built from the drivers' own declarations.

A dialect is read off a driver class (`pytest_edgehil.instruments`): its settings table (with each
setting's *RST value), interval rule, capture roles, start/stop commands, fetch queries and status
bits. Nothing instrument-specific is restated here, so a command the driver sends and a command the
twin accepts cannot drift apart. (The simulation may import the hardware path; never the reverse.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pytest_edgehil.instruments import scpi
from pytest_edgehil.instruments.dialect import FetchQuery
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.instruments.keithley_2281s import Keithley2281S
from pytest_edgehil.instruments.keysight_n6705c import KeysightN6705C
from pytest_edgehil.instruments.rs_ngm202 import RsNgm202
from pytest_edgehil.instruments.scpi import Setting, SettingTable, Value
from pytest_edgehil.instruments.scpi_header import Header, parse_header, split_header
from pytest_edgehil.sim.instrument_rounding import INTERVAL_ROUNDING
from pytest_edgehil.sim.instrument_specs import TWIN_SPECS
from pytest_edgehil.sim.scpi_server import split_args

#: Twin dialect name -> the driver whose declarations it speaks.
DRIVERS: dict[str, type[ScpiAnalyzer]] = {
    "keysight-n6705c": KeysightN6705C,
    "rs-ngm202": RsNgm202,
    "keithley-2281s": Keithley2281S,
}

#: Headers every dialect answers (IEEE 488.2 common commands and the SCPI error queue), short form.
COMMON_HEADERS = frozenset({"*IDN", "*RST", "*CLS", "*OPC", "*WAI", "*ESR", "*ESE", "*STB", "*SRE", "*TRG",
                            "*TST", "SYST:ERR"})
#: How the error queue's header is written (SCPI-99: `SYSTem:ERRor[:NEXT]?`).
ERROR_QUEUE = parse_header("SYSTem:ERRor[:NEXT]")


class ScpiFault(Exception):
    """Internal: an (code, text) entry for the error queue."""

    def __init__(self, error: tuple[int, str]) -> None:
        super().__init__(error[1])
        self.error = error


@dataclass(frozen=True)
class LevelTrigger:
    """A level trigger source: fire when the supply's `quantity` crosses `value` with `slope`."""

    quantity: str  # "current" (A) or "voltage" (V)
    value: float
    slope: str  # "POS" or "NEG"


@dataclass(frozen=True)
class CapturePlan:
    sample_interval_s: float
    points: int
    trigger_offset_points: int  # window starts this many points after the trigger (negative = before)
    trigger_source: str
    voltage_v: float  # 0 when the output is off
    current_full_scale_a: float
    voltage_full_scale_v: float
    digitize_voltage: bool
    level: LevelTrigger | None = None  # set when the trigger source is a level (CURR<n>, VOLT<n>)
    digitize_current: bool = True  # False: voltage alone (one parameter; its FETCh of current is refused)


def normalized_args(args: tuple[str, ...]) -> tuple[str, ...]:
    """Arguments as compared against a declared command: unquoted, without blanks, upper case."""
    return tuple(arg.strip("\"'").replace(" ", "").upper() for arg in args)


def without_channel_list(args: tuple[str, ...]) -> tuple[str, ...]:
    return args[:-1] if args and args[-1].startswith("(@") else args


def _header_and_args(command: str) -> tuple[Header, tuple[str, ...]]:
    """A declared (canonical) command line as its parsed header and normalized arguments."""
    head, _, rest = command.format(channel=1).partition(" ")
    return parse_header(head.rstrip("?")), normalized_args(without_channel_list(split_args(rest.strip())))


def state_key(setting: Setting, suffix: int) -> str:
    """Where the twin keeps a setting: its name, or `name@n` for each instance of a `<n>` header."""
    return f"{setting.name}@{suffix}" if setting.suffixes > 1 else setting.name


@dataclass(frozen=True)
class Route:
    """A declared command other than a setting: what the twin does when its header arrives."""

    header: Header
    kind: str  # "program" (args -> action), "fetch", "status", "status_event", "measure"
    actions: tuple[tuple[tuple[str, ...], str], ...] = ()  # program: (args, "init" | "clear" | "abort")
    fetch: FetchQuery | None = None
    args: tuple[str, ...] = ()  # fetch: the declared arguments (normalized, no channel list)
    quantity: str = ""  # measure: "current", "voltage", "power"

    @property
    def key(self) -> str:
        """The short form: how faults name it and `accepted_headers` lists it."""
        return self.header.short()


@dataclass(frozen=True)
class TwinDialect:
    """One instrument's dialect as the twin serves it, derived from `driver`'s declarations."""

    driver: type[ScpiAnalyzer]
    defaults: dict[str, Value]  # the *RST state (state_key -> value)
    routes: tuple[Route, ...]

    @classmethod
    def from_driver(cls, driver: type[ScpiAnalyzer]) -> TwinDialect:
        missing = [s.name for s in driver.settings if s.reset is None]
        if missing:
            raise ValueError(f"{driver.__name__} declares no *RST value for {', '.join(missing)}; "
                             f"the twin starts from them (Setting(reset=...))")
        programs: dict[str, tuple[Header, list[tuple[tuple[str, ...], str]]]] = {}
        actions = ["clear"] * (len(driver.start_commands) - 1) + ["init"]
        for command, action in [*zip(driver.start_commands, actions), (driver.stop_command, "abort")]:
            header, args = _header_and_args(command)
            programs.setdefault(header.text, (header, []))[1].append((args, action))
        routes = [Route(header, "program", actions=tuple(pairs)) for header, pairs in programs.values()]
        routes += [Route(*_header_and_args(fetch.query)[:1], "fetch", fetch=fetch,
                         args=_header_and_args(fetch.query)[1]) for fetch in driver.fetch_queries]
        routes.append(Route(_header_and_args(driver.status_query)[0], "status"))
        if driver.status_event_query:
            routes.append(Route(_header_and_args(driver.status_event_query)[0], "status_event"))
        routes += [Route(_header_and_args(query)[0], "measure", quantity=quantity)
                   for quantity, query in driver.measure_queries]
        defaults = {state_key(s, n): s.reset for s in driver.settings if s.reset is not None
                    for n in range(1, s.suffixes + 1)}
        return cls(driver=driver, defaults=defaults, routes=tuple(routes))

    def route(self, header: str) -> Route | None:
        """The declared command a received header (any SCPI form, no '?') names; None if none."""
        tokens = split_header(header)
        for route in self.routes:
            if route.header.match(tokens) is not None:
                return route
        return None

    def setting(self, header: str) -> tuple[Setting, int] | None:
        """(setting, numeric suffix) a received header names; None if none."""
        return self.settings.lookup(split_header(header))

    @property
    def streams(self) -> bool:
        """Whether the instrument streams its record in chunks (the NGM202's FastLog)."""
        return self.driver.chunk_period_s is not None

    @property
    def status_header(self) -> str:
        return next(route.key for route in self.routes if route.kind == "status")

    @property
    def idn(self) -> str:
        return self.driver.reference_idn

    @property
    def settings(self) -> SettingTable:
        return self.driver.settings

    def accepted_headers(self) -> set[str]:
        """Every header this dialect answers (besides COMMON_HEADERS), in short form."""
        return {s.short() for s in self.settings} | {route.key for route in self.routes}

    def normalize(self, setting: Setting, value: Value, state: Mapping[str, Value]) -> Value:
        """What the instrument stores for an accepted value, given its other settings (`state`): its
        interval rounding as its manual states it (`instrument_rounding`, never the driver's planning
        grid), its range choice: the smallest of its data sheet's ranges that holds the request
        (`instrument_specs`, never the driver's list; an autoranging instrument's setting, the 2281S's
        current limit, is stored as sent)."""
        roles = self.driver.roles
        if setting.name == roles.interval:
            rounding = INTERVAL_ROUNDING.get(self.driver.__name__)
            return rounding(value, state) if rounding is not None else value
        if setting.name == roles.current_range:
            spec = TWIN_SPECS.get(self.driver.__name__)
            return value if spec is None or spec.autoranging else spec.range_holding(float(value))
        return value

    def plan(self, state: dict[str, Value]) -> CapturePlan:
        """The capture the instrument would run from its settings; ScpiFault(-221) where they conflict."""
        roles = self.driver.roles
        interval_s = self.driver.interval_rule.interval_s(state[roles.interval])
        if self.streams:  # FastLog: no points, no trigger; the stream holds what it is read for
            voltage_v = float(state[roles.voltage]) if state[roles.output] == "ON" else 0.0
            return CapturePlan(interval_s, 0, 0, "IMM", voltage_v, float(state[roles.current_range]),
                               float(self.settings[roles.voltage].maximum or 20.0), True)
        points = int(state[roles.points])
        pretrigger = roles.pretrigger_sign * int(state[roles.pretrigger]) if roles.pretrigger else 0
        if pretrigger >= points:
            raise ScpiFault(scpi.SETTINGS_CONFLICT)
        # Each digitized function is one "parameter" (N6705C User's Guide p. 213): the shortest interval holds
        # for one, voltage or current; both need the longer one. Neither: nothing to digitize (our reading).
        digitize_current = not roles.digitize_current or state[roles.digitize_current] == "ON"
        digitize_voltage = not roles.digitize_voltage or state[roles.digitize_voltage] == "ON"
        if not (digitize_current or digitize_voltage):
            raise ScpiFault(scpi.SETTINGS_CONFLICT)
        if digitize_current and digitize_voltage and roles.digitize_voltage \
                and interval_s < roles.min_interval_both_s - 1e-12:
            raise ScpiFault(scpi.SETTINGS_CONFLICT)  # too fast for both functions on this module
        voltage_v = float(state[roles.voltage]) if state[roles.output] == "ON" else 0.0
        source = str(state[roles.trigger_source])
        return CapturePlan(interval_s, points, -pretrigger, source, voltage_v,
                           float(state[roles.current_range]),
                           float(self.settings[roles.voltage].maximum or 20.0), digitize_voltage,
                           self._level(source, state), digitize_current)

    def _level(self, source: str, state: dict[str, Value]) -> LevelTrigger | None:
        """The level trigger a source such as `CURR1` names (its level and slope), None for others."""
        for prefix, level, slope in self.driver.roles.level_triggers:
            if source.rstrip("0123456789") == prefix:
                quantity = "current" if prefix.startswith("CURR") else "voltage"
                return LevelTrigger(quantity, float(state[level]), str(state[slope]))
        return None


DIALECTS: dict[str, TwinDialect] = {name: TwinDialect.from_driver(driver) for name, driver in DRIVERS.items()}
