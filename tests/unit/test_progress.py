import io
import logging

from caffepipe.core.progress import Progress, format_duration, progress_line


def test_durations_read_like_a_person_writes_them() -> None:
    assert format_duration(5) == "5s"
    assert format_duration(75) == "1m15s"
    assert format_duration(3725) == "1h02m"


def test_a_progress_line_has_count_share_rate_and_eta() -> None:
    line = progress_line("train lenet", 500, 10000, "it", 50.0, {"loss": 0.3125})
    assert line == "train lenet: 500/10000 it (5.0%), loss=0.3125, 50.0 it/s, ETA 3m10s"


def test_without_a_terminal_it_logs_plain_lines(caplog) -> None:
    stream = io.StringIO()            # not a TTY: no bar is drawn
    with caplog.at_level(logging.INFO, logger="caffepipe.core.progress"):
        with Progress(total=10, desc="work", stream=stream, interval_s=0) as progress:
            progress.update(step=4, loss=1.0)
            progress.update(to=10)
    assert stream.getvalue() == ""
    assert any("work: 4/10 it (40.0%), loss=1" in message for message in caplog.messages)
    assert caplog.messages[-1].startswith("work: 10/10 it (100.0%)")
