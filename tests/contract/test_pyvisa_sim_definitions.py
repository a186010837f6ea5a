"""The pyvisa-sim definitions (`instruments/*.yaml`) accept the numbers the instruments accept:
a one-digit value (the Coral's 5 V supply), a decimal, an exponent (issue 12: `VOLT 5` gave -113)."""

from __future__ import annotations

import pytest
import pyvisa

from pytest_edgehil.resources import instrument_sim_file

DEFINITIONS = {  # file -> (resource, suffix after a value, suffix after a query)
    "n6705c": ("TCPIP0::192.168.10.5::inst0::INSTR", ",(@1)", " (@1)"),
    "ngm202": ("TCPIP0::192.168.10.6::5025::SOCKET", "", ""),
    "k2281s": ("USB0::0x05E6::0x2281::04386580::INSTR", "", ""),
}


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
@pytest.mark.parametrize("value", ["5", "3.3", "3.3E0", "1e1"])
def test_voltage_values_in_every_numeric_form(name: str, value: str) -> None:
    resource, after_value, after_query = DEFINITIONS[name]
    manager = pyvisa.ResourceManager(f"{instrument_sim_file(name)}@sim")
    handle = manager.open_resource(resource, read_termination="\n", write_termination="\n")
    try:
        handle.write(f"VOLT {value}{after_value}")
        assert handle.query("SYST:ERR?").split(",")[0].lstrip("+") == "0", value
        assert float(handle.query(f"VOLT?{after_query}")) == pytest.approx(float(value))
        assert handle.query("*OPC?") == "1"
    finally:
        handle.close()
