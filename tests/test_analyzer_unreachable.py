"""An analyzer that cannot be reached is one typed error naming the resource and what to check: from the
product's open path (`open_analyzer`) and, once per session, from the SCPI contract suite run with
`--analyzer` (found by a fresh-user review: pyvisa's bare ConnectionRefusedError once per test)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa

from pytest_edgehil.errors import InstrumentError, InstrumentTimeout
from pytest_edgehil.instruments import open_analyzer

REPO = Path(__file__).resolve().parent.parent
CONTRACT_COMMON = REPO / "tests" / "contract" / "test_ieee488_common.py"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (an instrument hung, or no SCPI there)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def assert_says_what_to_check(error: BaseException, resource: str) -> None:
    text = str(error)
    assert resource in text and "pyvisa-info" in text and "instrument is on" in text, text


def test_connection_refused_at_open_is_an_instrument_error() -> None:
    resource = f"TCPIP::127.0.0.1::{closed_port()}::SOCKET"
    with pytest.raises(InstrumentError) as info:
        open_analyzer(resource, resource_manager=pyvisa.ResourceManager("@py"), timeout_ms=500)
    assert_says_what_to_check(info.value, resource)
    assert "Connection refused" in str(info.value)


def test_unknown_host_is_an_instrument_error_not_pyvisa_pys_bare_exception() -> None:
    resource = "TCPIP::no-such-analyzer.invalid::5025::SOCKET"  # .invalid never resolves (RFC 6761)
    with pytest.raises(InstrumentError) as info:
        open_analyzer(resource, resource_manager=pyvisa.ResourceManager("@py"), timeout_ms=500)
    assert_says_what_to_check(info.value, resource)


class _ConnectTimesOut:
    """A resource manager whose open fails as pyvisa-py's does when the host never answers the connect
    (a bare Exception carrying the VISA status): an unroutable address cannot be relied on in CI."""

    def open_resource(self, resource: str, **_: object) -> None:
        raise Exception("could not connect: StatusCode.error_timeout")  # noqa: TRY002 - what pyvisa-py raises


def test_connect_timeout_at_open_is_an_instrument_error() -> None:
    resource = "TCPIP::192.0.2.1::5025::SOCKET"
    with pytest.raises(InstrumentError) as info:
        open_analyzer(resource, resource_manager=_ConnectTimesOut(), timeout_ms=500)
    assert_says_what_to_check(info.value, resource)
    assert "error_timeout" in str(info.value)


def test_an_instrument_that_never_answers_idn_is_an_instrument_timeout(silent_port: int) -> None:
    resource = f"TCPIP::127.0.0.1::{silent_port}::SOCKET"
    with pytest.raises(InstrumentTimeout) as info:
        open_analyzer(resource, resource_manager=pyvisa.ResourceManager("@py"), timeout_ms=300)
    assert resource in str(info.value) and "*IDN?" in str(info.value) and "pyvisa-info" in str(info.value)


def test_contract_suite_against_an_unreachable_analyzer_fails_once_and_skips_the_rest(
        pytester: pytest.Pytester) -> None:
    resource = f"TCPIP::127.0.0.1::{closed_port()}::SOCKET"
    result = pytester.runpytest_subprocess(str(CONTRACT_COMMON), f"--analyzer={resource}", "-rs",
                                           "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    collected = sum(outcomes.get(k, 0) for k in ("passed", "failed", "errors", "error", "skipped"))
    assert collected > 3, result.stdout.str()
    assert outcomes.get("errors", 0) == 1, result.stdout.str()
    assert outcomes.get("skipped", 0) == collected - 1 and outcomes.get("passed", 0) == 0
    out = result.stdout.str()
    assert "ConnectionRefusedError" not in out  # pyvisa-py's exception, once per test before
    result.stdout.fnmatch_lines([f"*InstrumentError*{resource}*Connection refused*pyvisa-info*",
                                 f"SKIPPED*analyzer {resource} could not be reached*"])
