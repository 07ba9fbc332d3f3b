import threading

from rewardflow.workflow_exit import cancel_pending_timers


def test_pending_timers_are_cancelled_and_their_threads_end_without_firing():
    fired = threading.Event()
    timers = [threading.Timer(60, fired.set) for _ in range(3)]
    for timer in timers:
        timer.start()
    assert cancel_pending_timers() == 3
    for timer in timers:
        # A pending non-daemon timer would hold the interpreter's exit for its whole delay.
        timer.join(timeout=10)
        assert not timer.is_alive()
    assert not fired.is_set()


def test_other_threads_are_left_alone():
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert cancel_pending_timers() == 0
        assert worker.is_alive()
    finally:
        stop.set()
        worker.join()
