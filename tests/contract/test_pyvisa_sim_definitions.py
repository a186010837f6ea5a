"""The pyvisa-sim definitions (`instruments/*.yaml`) accept the numbers the instruments accept:
a one-digit value (the Coral's 5 V supply), a decimal, an exponent (issue 12: `VOLT 5` gave -113),
and the MINimum/MAXimum/DEFault keywords of every numeric setting.

pyvisa-sim cannot store a keyword in a typed property (see the YAML headers): the keyword commands
are accepted and leave the session in step, and `VOLT? MIN|MAX` report the limits; the property
keeps its value. The analyzer twin applies the keywords (tests/contract/test_ieee488_common.py and
the twin's own tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pyvisa
import yaml

from pytest_edgehil.resources import instrument_sim_file

DEFINITIONS = {  # file -> (resource, suffix after a value, suffix after a query)
    "n6705c": ("TCPIP0::192.168.10.5::inst0::INSTR", ",(@1)", " (@1)"),
    "ngm202": ("TCPIP0::192.168.10.6::5025::SOCKET", "", ""),
    "k2281s": ("USB0::0x05E6::0x2281::04386580::INSTR", "", ""),
}


@pytest.fixture
def session(request: pytest.FixtureRequest) -> Iterator[pyvisa.resources.MessageBasedResource]:
    resource = DEFINITIONS[request.param][0]
    manager = pyvisa.ResourceManager(f"{instrument_sim_file(request.param)}@sim")
    handle = manager.open_resource(resource, read_termination="\n", write_termination="\n")
    try:
        yield handle
    finally:
        handle.close()


def in_step(handle: pyvisa.resources.MessageBasedResource, command: str) -> None:
    """Send `command`; the error queue stays empty and the next query is answered in turn."""
    handle.write(command)
    assert handle.query("SYST:ERR?").split(",")[0].lstrip("+") == "0", command
    assert handle.query("*OPC?") == "1", f"reply shifted after {command!r}"


@pytest.mark.parametrize("session", sorted(DEFINITIONS), indirect=True)
@pytest.mark.parametrize("value", ["5", "3.3", "3.3E0", "1e1"])
def test_voltage_values_in_every_numeric_form(session: pyvisa.resources.MessageBasedResource, value: str,
                                              request: pytest.FixtureRequest) -> None:
    _, after_value, after_query = DEFINITIONS[request.node.callspec.params["session"]]
    in_step(session, f"VOLT {value}{after_value}")
    assert float(session.query(f"VOLT?{after_query}")) == pytest.approx(float(value))


@pytest.mark.parametrize("session", sorted(DEFINITIONS), indirect=True)
@pytest.mark.parametrize("keyword", ["MAX", "DEF", "MIN"])
def test_voltage_keywords_are_accepted_and_limits_reported(session: pyvisa.resources.MessageBasedResource,
                                                           keyword: str, request: pytest.FixtureRequest) -> None:
    name = request.node.callspec.params["session"]
    _, after_value, _ = DEFINITIONS[name]
    in_step(session, f"VOLT {keyword}{after_value}")
    specs = definition(name)["properties"]["voltage"]["specs"]
    assert float(session.query(f"VOLT? MAX{after_value}")) == pytest.approx(float(specs["max"]))
    assert float(session.query(f"VOLT? MIN{after_value}")) == pytest.approx(float(specs["min"]))


def definition(name: str) -> dict:
    with open(instrument_sim_file(name), encoding="utf-8") as handle:
        devices = yaml.safe_load(handle)["devices"]
    return next(iter(devices.values()))


NUMERIC_SETTERS = [(name, prop, spec["setter"]["q"]) for name in sorted(DEFINITIONS)
                   for prop, spec in definition(name)["properties"].items()
                   if "setter" in spec and spec.get("specs", {}).get("type") in ("int", "float")]


@pytest.mark.parametrize(("name", "prop", "setter"), NUMERIC_SETTERS,
                         ids=[f"{name}-{prop}" for name, prop, _ in NUMERIC_SETTERS])
@pytest.mark.parametrize("keyword", ["MIN", "MAX", "DEF"])
def test_every_numeric_setting_takes_min_max_def(name: str, prop: str, setter: str, keyword: str) -> None:
    manager = pyvisa.ResourceManager(f"{instrument_sim_file(name)}@sim")
    handle = manager.open_resource(DEFINITIONS[name][0], read_termination="\n", write_termination="\n")
    try:
        in_step(handle, setter.replace("{:s}", keyword))
        # A keyword the definition does not know still fails: the check above can fail.
        handle.write(setter.replace("{:s}", "MAXX"))
        assert handle.query("SYST:ERR?").startswith("-113"), prop
    finally:
        handle.close()
