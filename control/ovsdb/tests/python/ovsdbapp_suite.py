#!/usr/bin/python3
"""Runs ovsdbapp's own OVN NB and SB functional tests against servers already running.

usage: ovsdbapp_suite.py NB_REMOTE SB_REMOTE

The tests are the ones Debian's python3-ovsdbapp 2.1.0 installs
(ovsdbapp/tests/functional/schema/ovn_{northbound,southbound}/test_impl_idl.py, byte for byte
the 2.1.0 release's), loaded unmodified. Their base class, FunctionalTestCase, builds its
servers through its `fixture_class` attribute (venv.OvsOvnVenvFixture, which starts
ovsdb-server, ovs-vswitchd, ovn-northd and ovn-controller from an OVS tree) and then only reads
the fixture's `ovnnb_connection` and `ovnsb_connection`. That attribute is the hook used here:
a fixture that starts nothing and names the servers given on the command line. The caller runs
ovn-northd between them, as the venv does, because the SB tests wait for the Port_Binding
ovn-northd makes from an NB port.

Prints one line per test, `PASS <id>` or `FAIL <id>` (errors count as failures, with the
traceback on stderr), then `passed N failed M`. Exits 0 whenever the suite ran.
"""

import sys
import unittest

import fixtures

from ovsdbapp.tests.functional import base


class RunningServers(fixtures.Fixture):
    """Stands in for venv.OvsOvnVenvFixture: the servers exist already."""

    nb = None
    sb = None

    def __init__(self, venv, **_kwargs):
        super().__init__()
        self.venv = venv

    @property
    def ovnnb_connection(self):
        return self.nb

    @property
    def ovnsb_connection(self):
        return self.sb

    @property
    def ovs_connection(self):
        # No Open_vSwitch database: the OVN tests never open one.
        return None


class Outcomes(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = []
        self.failed = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test.id())

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.failed.append(test.id())

    def addError(self, test, err):
        super().addError(test, err)
        self.failed.append(test.id())

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.failed.append(test.id())

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.failed.append(test.id())

    def addSkip(self, test, reason):
        # A skip is not a pass: it is reported, and counted with the failures.
        super().addSkip(test, reason)
        self.failed.append(test.id())


def main():
    nb, sb = sys.argv[1], sys.argv[2]
    RunningServers.nb, RunningServers.sb = nb, sb
    base.FunctionalTestCase.fixture_class = RunningServers
    names = [
        "ovsdbapp.tests.functional.schema.ovn_northbound.test_impl_idl",
        "ovsdbapp.tests.functional.schema.ovn_southbound.test_impl_idl",
    ]
    suite = unittest.defaultTestLoader.loadTestsFromNames(names)
    runner = unittest.TextTestRunner(
        stream=sys.stderr, verbosity=0, resultclass=Outcomes)
    result = runner.run(suite)
    for t in sorted(result.passed):
        print("PASS", t)
    for t in sorted(result.failed):
        print("FAIL", t)
    print("passed %d failed %d" % (len(result.passed), len(result.failed)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
