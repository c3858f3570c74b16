"""The contract registry itself: every port has adapters and a suite."""

from __future__ import annotations

import pathlib

from crucible_train.ports import PORTS

from fakes import FAKES

HERE = pathlib.Path(__file__).parent


def test_every_port_has_an_adapter_and_a_suite(contract_registry):
    factories, _unconfigured = contract_registry
    for port in PORTS:
        assert any(key[0] == port for key in factories), port
        assert (HERE / f"test_{port}_contract.py").is_file(), port


def test_registry_keys_name_real_ports(contract_registry):
    factories, unconfigured = contract_registry
    assert {port for port, _backend in factories} <= set(PORTS)
    assert unconfigured <= set(factories)


def test_every_noop_adapter_is_registered(contract_registry):
    factories, _unconfigured = contract_registry
    assert {port for port, backend in factories if backend == "noop"} == set(PORTS)


def test_every_backend_the_container_can_build_has_a_contract_factory(contract_registry):
    # A new adapter registered in container.BACKENDS fails here until it joins the suites.
    from crucible_train.container import BACKENDS

    factories, _unconfigured = contract_registry
    registered = {(port, backend) for port, backends in BACKENDS.items() for backend in backends}
    assert registered - set(factories) == set()


def test_every_port_has_its_fake_registered(contract_registry, tmp_path):
    # tests/fakes holds one fake per port; each must run its port's contract suite.
    factories, unconfigured = contract_registry
    for port in PORTS:
        assert (port, "fake") in factories, port
        assert (port, "fake") not in unconfigured, port
        assert type(factories[port, "fake"](tmp_path)) is FAKES[port], port
    # The run and results stores are not YAML ports; their suites parametrize their own cases.
    assert set(FAKES) == {*PORTS, "run_store", "results_store"}
