"""Third-party console lines that say nothing to a domainft user, dropped at import, and why.

Only messages known to be noise are filtered, by their text: everything else a library logs still
shows. No import here: domainft.serving must import without torch or transformers.
"""
from __future__ import annotations

import logging

# (logger, start of the message, why it is noise)
NOISE = [
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward",
     "transformers' Trainer and peft import bitsandbytes whenever it is installed; on an AVX512-BF16 CPU its "
     "import looks for an optional faster 4-bit kernel (the `kernels` package) and warns when it is absent. "
     "Encoder runs never use 4-bit; qlora falls back to bitsandbytes' own CPU kernel."),
]


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: list[str]):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def silence_foreign_noise() -> None:
    by_logger: dict[str, list[str]] = {}
    for name, prefix, _why in NOISE:
        by_logger.setdefault(name, []).append(prefix)
    for name, prefixes in by_logger.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(prefixes))
