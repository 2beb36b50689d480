"""The batched launcher's logs: while a group trains in one process, each member's lines go
to its own ``run.log``, labelled with its seed on the console."""

import logging
import os


def log_key(out_dir) -> str:
    return os.path.abspath(str(out_dir))


class MemberLogs(logging.Handler):
    """While a group trains in this process, each member's lines go to its own log file
    (``run.log``) and its round lines are labelled with its seed on the console. Hydra's job
    logging holds the file of the job it set up last; this handler takes that file handler's
    place: a line of a member (its trainer's ``run_dir``, or the member being finished,
    ``current``) goes to that member's file, any other line (the ensemble's) to every
    member's."""

    def __init__(self, members) -> None:
        super().__init__()
        members = list(members)
        self.current: str | None = None
        self.labels = {
            log_key(m["request"]["out_dir"]): f"seed {m['request']['built'].seed}: "
            for m in members
        }
        self.root = logging.getLogger()
        # Hydra's file handler of the job it set up last: in a job folder of the sweep (none
        # where job logging is off)
        sweeps = {os.path.dirname(key) for key in self.labels}
        self.replaced = [
            h
            for h in self.root.handlers
            if isinstance(h, logging.FileHandler)
            and os.path.dirname(os.path.dirname(os.path.abspath(h.baseFilename))) in sweeps
        ]
        self.files: dict[str, logging.FileHandler] = {}
        self.consoles = [
            h
            for h in self.root.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        ]
        self.formatters = {h: h.formatter for h in self.consoles}

    def __enter__(self) -> "MemberLogs":
        if self.replaced:
            model = self.replaced[0]
            name = os.path.basename(model.baseFilename)
            for key in self.labels:
                handler = logging.FileHandler(os.path.join(key, name), mode="a", delay=True)
                handler.setFormatter(model.formatter)
                handler.setLevel(model.level)
                self.files[key] = handler
            self.setLevel(min(h.level for h in self.replaced))
            for handler in self.replaced:
                self.root.removeHandler(handler)
            self.root.addHandler(self)
        for handler in self.consoles:
            handler.setFormatter(Labelled(handler.formatter, self.labels))
        return self

    def __exit__(self, *exc) -> None:
        for handler, formatter in self.formatters.items():
            handler.setFormatter(formatter)
        if self.replaced:
            self.root.removeHandler(self)
            for handler in self.replaced:
                self.root.addHandler(handler)
        for handler in self.files.values():
            handler.close()

    def emit(self, record: logging.LogRecord) -> None:
        key = getattr(record, "run_dir", None)
        key = log_key(key) if key is not None else self.current
        targets = [self.files[key]] if key in self.files else list(self.files.values())
        for handler in targets:
            if record.levelno >= handler.level:
                handler.handle(record)


class Labelled(logging.Formatter):
    """A console formatter that puts the member's label (``seed 1: ``) before the lines of a
    member's trainer (they carry its ``run_dir``)."""

    def __init__(self, inner: logging.Formatter | None, labels: dict[str, str]) -> None:
        super().__init__()
        self.inner, self.labels = inner or logging.Formatter(), labels

    def format(self, record: logging.LogRecord) -> str:
        key = getattr(record, "run_dir", None)
        label = self.labels.get(log_key(key)) if key is not None else None
        if label is None:
            return self.inner.format(record)
        labelled = logging.makeLogRecord(record.__dict__)
        labelled.msg, labelled.args = label + record.getMessage(), None
        return self.inner.format(labelled)
