"""An S3 server on 127.0.0.1 for tests and benchmarks: moto's, behind a WSGI middleware that
counts every request (needs moto, werkzeug and boto3: the ``test`` and ``s3`` extras)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["CountingS3", "request_method"]


def request_method(environ: dict[str, Any]) -> str:
    """A request's method, ``LIST`` for a listing (a GET of the bucket itself)."""
    method = str(environ.get("REQUEST_METHOD", "?"))
    if method == "GET" and "/" not in environ.get("PATH_INFO", "").strip("/"):
        return "LIST"
    return method


class CountingS3:
    """moto's S3 server on 127.0.0.1 holding ``bucket``, counting requests by ``key(environ)``.

    ``options`` are the fsspec storage options that reach it; :meth:`take` gives the counts
    since its last call."""

    def __init__(
        self, bucket: str, key: Callable[[dict[str, Any]], Hashable] = request_method
    ) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.counts: Counter[Any] = Counter()
        self._lock = threading.Lock()
        app = DomainDispatcherApplication(create_backend_app)

        def counting(environ: dict[str, Any], start_response: Any) -> Any:
            with self._lock:
                self.counts[key(environ)] += 1
            return app(environ, start_response)

        self._server = make_server("127.0.0.1", 0, counting, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = str(self._server.host), self._server.server_port
        self.options = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1"},
        }
        self.client().create_bucket(Bucket=bucket)

    def client(self) -> Any:
        """A boto3 S3 client of this server."""
        import boto3  # type: ignore[import-untyped]

        kw = self.options["client_kwargs"]
        return boto3.client(
            "s3", endpoint_url=kw["endpoint_url"], region_name=kw["region_name"],  # type: ignore[index]
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip

    def take(self) -> Counter[Any]:
        """The counts since the last call."""
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts

    def stop(self) -> None:
        self._server.shutdown()
