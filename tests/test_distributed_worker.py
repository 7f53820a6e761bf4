"""course_lib.distributed_worker (lesson 13): the process plumbing (a hung worker is
stopped and reported, a failing one shows its error, free ports are distinct), the
argument checks, and one real run: MirroredStrategy over two logical CPU devices takes
the same steps as the same fit on one device, and the custom loop matches model.fit."""

import subprocess
import sys
import time

import numpy as np
import pytest

from course_lib import distributed_worker
from course_lib.distributed_worker import free_ports, make_data, max_difference, run_all


def python(code, error):
    """A process as `run_all` starts them: stderr to a file (a full pipe would block it)."""
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=error)


def test_a_hung_worker_is_stopped_and_reported_within_the_timeout(tmp_path):
    with open(tmp_path / "a", "w+b") as a, open(tmp_path / "b", "w+b") as b:
        quick, hung = python("pass", a), python("import time; time.sleep(60)", b)
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="timeout=1"):
            distributed_worker._wait([quick, hung], timeout=1, errors=[a, b])
    assert time.monotonic() - start < 30
    assert hung.wait(timeout=10) != 0  # killed, not left running


def test_a_failing_worker_is_reported_at_once_with_its_error_and_the_others_stopped(tmp_path):
    with open(tmp_path / "a", "w+b") as a, open(tmp_path / "b", "w+b") as b:
        waiting = python("import time; time.sleep(60)", a)  # a peer that would wait for it forever
        failing = python("raise SystemExit('the worker broke')", b)
        start = time.monotonic()
        with pytest.raises(RuntimeError, match=r"(?s)exited with code 1.*the worker broke"):
            distributed_worker._wait([waiting, failing], timeout=60, errors=[a, b])
    assert time.monotonic() - start < 30  # not after the timeout
    assert waiting.poll() is not None  # stopped


def test_free_ports_are_distinct_and_bindable():
    import socket

    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(1024 <= port <= 65535 for port in ports)
    with socket.socket() as s:
        s.bind(("localhost", ports[0]))  # free a moment ago, free now


def test_max_difference_is_the_largest_absolute_difference_over_all_arrays():
    a = [np.zeros((2, 2)), np.array([1.0, 2.0])]
    b = [np.full((2, 2), -0.25), np.array([1.0, 2.5])]
    assert max_difference(a, b) == 0.5
    assert max_difference(a, a) == 0.0


def test_the_task_is_the_same_in_every_process_and_not_trivial():
    (x1, y1), (x2, y2) = make_data(), make_data()
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert x1.shape == (512, 16) and 0.3 < y1.mean() < 0.7  # both labels common


@pytest.mark.parametrize("modes", ["mirrored", ("mirrored", "gpu"), ("workers", None)])
def test_run_all_names_the_modes_it_accepts(modes):
    with pytest.raises(ValueError, match="`modes`"):
        run_all(modes)


def test_the_script_rejects_an_unknown_mode(tmp_path):
    with pytest.raises(SystemExit, match="MODE must be one of"):
        distributed_worker.main(["tpu", str(tmp_path / "out.npz")])


def test_mirrored_strategy_on_two_devices_takes_the_steps_of_one_device():
    run = run_all(("mirrored",), timeout=240)["mirrored"]
    assert run["replicas"] == 2 and len(run["devices"]) == 2
    weights, reference, loop = run["weights"], run["reference"], run["loop"]
    assert [w.shape for w in weights] == [(16, 32), (32,), (32, 1), (1,)]
    assert max_difference(weights, reference) < 1e-5  # the two replicas' summed gradients are the mean
    assert max_difference(loop, reference) < 1e-5  # the custom loop's loss scaling is model.fit's
    assert len(run["losses"]) == 3 * 512 // 64 and run["losses"][-1] < run["losses"][0] - 0.1  # and it learned
