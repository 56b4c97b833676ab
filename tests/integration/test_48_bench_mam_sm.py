"""The benchmark scenarios of issue 13 (tools/xmpp-bench mam-fill, mam-query,
sm-acks): listed by -h, and each run against xmppd ends with a RESULT line,
either done (the server has the feature) or failed with a reason that names
the missing feature (the archive query refused, no urn:xmpp:sm:3 offered). No
timing is asserted: the figures are BENCHMARKS.md's business."""

import os
import subprocess

import pytest

from xmpp_helpers import SLOWDOWN

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                     "xmpp-bench")
PASSWORD = "bench-Secret-13"


def bench(*args, timeout=120):
    if not os.access(BENCH, os.X_OK):
        pytest.fail("tools/xmpp-bench is not built (make tools/xmpp-bench)")
    return subprocess.run([BENCH] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout * SLOWDOWN)


def result_fields(out):
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert lines, "no RESULT line from xmpp-bench: %s" % out[-2000:]
    return dict(kv.split("=", 1) for kv in lines[-1].split()[1:] if "=" in kv)


def test_help_lists_the_mam_and_sm_scenarios():
    proc = bench("-h")
    assert proc.returncode == 0, proc.stderr
    for name in ("mam-fill", "mam-query", "sm-acks"):
        assert "\n  %s " % name in proc.stdout, "%s missing from -h" % name
    for option in ("--page", "--queries", "--ack-every", "--resumes"):
        assert option in proc.stdout


@pytest.fixture
def bench_server(server):
    server.require_managed()
    server.write_config({"require_tls": "no", "plain_without_tls": "yes"})
    for i in range(1, 9):
        server.adduser("mb%d" % i, PASSWORD)
    server.restart()
    return server


# Each scenario with small numbers, and what its failure says when a server
# lacks the feature (tools/compare.sh relies on it for the other servers).
SCENARIOS = {
    "mam-fill": (["--messages", 40, "--senders", 1, "--recipients", 3],
                 "archive query refused"),
    "mam-query": (["--queries", 2, "--page", 5], "archive query"),
    "sm-acks": (["--pairs", 2, "--duration", 1, "--resumes", 1],
                "server offers no stream management (urn:xmpp:sm:3)"),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_ends_with_a_result(bench_server, scenario):
    srv = bench_server
    args, missing = SCENARIOS[scenario]
    if scenario == "mam-query":
        fill = bench("mam-fill", "--host", srv.host, "--port", srv.c2s_port, "--domain",
                     srv.domain, "--users", "mb%d", "--password", PASSWORD, "--first", 1,
                     "--messages", 40, "--senders", 1, "--recipients", 3, "--timeout", 60)
        result_fields(fill.stdout)
    proc = bench(scenario, "--host", srv.host, "--port", srv.c2s_port, "--domain", srv.domain,
                 "--users", "mb%d", "--password", PASSWORD, "--first", 1, "--timeout", 60,
                 *args)
    r = result_fields(proc.stdout)
    assert r["scenario"] == scenario, r
    # xmppd has the archive and stream management now: a run must succeed.
    assert r["status"] == "ok" and proc.returncode == 0, (r, proc.stderr[-2000:])
