"""A local S3-compatible server for the object-storage tests.

moto's server mode (``moto[s3]`` + flask, from requirements-dev.txt) serves the S3 API over
HTTP on 127.0.0.1 on a free port, in a thread of the test process; it is started once per
test session by the ``s3_endpoint`` fixture (tests/conftest.py) and stopped at its end. Set
``TERMDEPOSIT_TEST_S3_ENDPOINT`` to run the same tests against another S3-compatible server
(e.g. MinIO on 127.0.0.1) instead; its credentials are read from the usual AWS variables.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator

S3_ENV = "TERMDEPOSIT_TEST_S3_ENDPOINT"
#: Credentials of the local test server (moto accepts any).
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "termdeposit-test",
    "AWS_SECRET_ACCESS_KEY": "termdeposit-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1 (or use ``TERMDEPOSIT_TEST_S3_ENDPOINT``); yield
    its endpoint URL; stop it afterwards."""
    endpoint = os.environ.get(S3_ENV)
    if endpoint:
        yield endpoint
        return
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def new_bucket(endpoint: str) -> str:
    """Create an empty bucket with a fresh name on the server; return its name."""
    import boto3

    name = f"termdeposit-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=os.environ.get(
            "AWS_ACCESS_KEY_ID", TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"]
        ),
        aws_secret_access_key=os.environ.get(
            "AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
        ),
    )
    client.create_bucket(Bucket=name)
    return name
