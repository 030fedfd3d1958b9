"""Helpers shared by the search tests: import them from here (``from tests.search.helpers import ...``).

Fixtures live in ``conftest.py``; a conftest is pytest's to load, not a module for test files to import.
"""

from __future__ import annotations

from dataclasses import dataclass

TINY_SPEC = """
name: tiny
trainable: feature_selection
data: {name: madelon, n_samples: 200, n_features: 10, n_informative: 3}
metric: val_accuracy
mode: max
search: {num_samples: 3, seed: 0}
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
space:
  lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
  sparsity_lambda: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
fixed: {epochs: 3, batch_size: 32}
resources: {num_workers: 1, cpus_per_worker: 1}
failure: {max_retries: 0}
"""


@dataclass(frozen=True)
class S3Server:
    """A real S3 API on loopback (moto's server mode), with bucket :attr:`bucket` created."""

    endpoint: str
    bucket: str
    env: dict[str, str]  # what a process needs to reach it: endpoint, region, dummy credentials

    def files(self, prefix: str) -> dict[str, int]:
        """Object path (below the bucket) -> size, for every object under ``prefix``."""
        import pyarrow.fs

        fs = self.filesystem()
        root = f"{self.bucket}/{prefix}".rstrip("/")
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
        return {i.path[len(self.bucket) + 1:]: i.size for i in infos if i.type == pyarrow.fs.FileType.File}

    def read(self, key: str) -> str:
        return self.read_bytes(key).decode()

    def read_bytes(self, key: str) -> bytes:
        with self.filesystem().open_input_stream(f"{self.bucket}/{key}") as fh:
            return fh.read()

    def write(self, key: str, text: str) -> None:
        with self.filesystem().open_output_stream(f"{self.bucket}/{key}") as fh:
            fh.write(text.encode())

    def filesystem(self):
        import pyarrow.fs

        return pyarrow.fs.S3FileSystem(endpoint_override=self.endpoint, access_key="testing", secret_key="testing",
                                       region="us-east-1", scheme="http")


def results_cli(*argv: str) -> tuple[int, str, str]:
    """Run a results command in-process as `python -m search` would: (exit code, stdout, stderr)."""
    import argparse
    import contextlib
    import io

    from search.cli.results import HANDLERS, add_parsers

    parser = argparse.ArgumentParser(prog="python -m search")
    parser.add_argument("--debug", action="store_true")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = HANDLERS[args.command](args)
    return code, out.getvalue(), err.getvalue()
