"""The command line, ``python -m search <verb>``: one module per group of verbs.

* :mod:`.experiment` — ``validate``, ``run``, ``resume``;
* :mod:`.results` — ``export``, ``best``, ``features``, ``report``, ``predict``;
* :mod:`.data` — ``data``: a data set's split as raw rows, what ``predict`` takes;
* :mod:`.jobs` — ``submit`` and ``jobs list|status|logs|stop`` on a cluster;
* :mod:`.exits` — the exit codes, and how an error becomes one message and a code;
* :mod:`.main` — the parser and :func:`main`.
"""

from search.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from search.cli.main import main

__all__ = ["main", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED"]
