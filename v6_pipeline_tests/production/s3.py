"""A real S3 API for the tests: moto's server (`moto[server]`) in a process of its own on a
free loopback port, checking every request's signature against an IAM key it issued; and
`CommitGate`, a proxy in front of it that makes two Delta writers collide for sure."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import boto3

from v6_pipeline_tests.support import free_port

REGION = "us-east-1"
_ALL_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass
class S3Server:
    process: subprocess.Popen[bytes]
    port: int
    key_id: str = ""
    secret: str = ""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The settings a deployment gives the pipeline for this server (AWS_ALLOW_HTTP is
        left to the project: an http:// endpoint implies it)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_REGION": REGION,
        }

    def client(self, service: str = "s3"):  # -> a boto3 client
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key_id or "setup",
            aws_secret_access_key=self.secret or "setup",
            region_name=REGION,
        )

    def new_bucket(self) -> str:
        name = f"lake-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> dict[str, str]:
        """Every object's key and ETag: what a test compares to prove nothing was touched."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_s3() -> S3Server:
    """Start moto's server, issue an IAM key allowed every S3 action, then turn on its
    authentication: from then on a wrong key or secret is refused, as by a real store."""
    for _ in range(3):  # a free port can be taken between the probe and the bind
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = S3Server(process, port)
        if _answers(server):
            break
        server.stop()
    else:
        raise RuntimeError("moto's S3 server did not start (python -m moto.server)")
    iam = server.client("iam")
    iam.create_user(UserName="v6")
    iam.put_user_policy(UserName="v6", PolicyName="s3", PolicyDocument=json.dumps(_ALL_S3))
    key = iam.create_access_key(UserName="v6")["AccessKey"]
    server.key_id, server.secret = key["AccessKeyId"], key["SecretAccessKey"]
    request = urllib.request.Request(
        f"{server.endpoint}/moto-api/reset-auth",
        data=b"0",  # authenticate from the next request on
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    return server


def _answers(server: S3Server, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            urllib.request.urlopen(f"{server.endpoint}/moto-api/data.json", timeout=2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


_COMMIT = re.compile(r"/_delta_log/\d{20}\.json$")  # a Delta commit (not a checkpoint)
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class CommitGate:
    """An HTTP proxy in front of the S3 server that holds back the first Delta commit it
    sees until another commit has landed (or `hold_s` passed): two writers started
    together then both try to commit the same version, and one loses."""

    def __init__(self, upstream: S3Server, *, hold_s: float = 30.0) -> None:
        self.upstream = upstream
        self.hold_s = hold_s
        self.held_status: int | None = None  # what the store answered the held commit
        self._lock = threading.Lock()
        self._holding = False
        self._landed = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CommitGate:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._landed.set()
        self._server.shutdown()
        self._server.server_close()

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes):
        """Send one request on (held first, if it is the first commit); the answer."""
        commit = method == "PUT" and _COMMIT.search(urlsplit(path).path) is not None
        hold = False
        if commit:
            with self._lock:
                hold, self._holding = not self._holding, True
        if hold:
            self._landed.wait(self.hold_s)
        # Headers as signed (Host included): the store checks the signature.
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream.port, timeout=60)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            answer = conn.getresponse()
            status, reason, answer_headers = answer.status, answer.reason, answer.getheaders()
            data = answer.read()
        finally:
            conn.close()
        if hold:
            self.held_status = status
        elif commit and status == 200:
            self._landed.set()
        return status, reason, answer_headers, data


def _handler(gate: CommitGate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            if length:
                headers["Content-Length"] = str(length)
            status, reason, answer_headers, data = gate.forward(
                self.command, self.path, headers, body
            )
            self.send_response(status, reason)
            # A HEAD answer keeps the object's length (it has no body).
            kept = _HOP - {"content-length"} if self.command == "HEAD" else _HOP
            for name, value in answer_headers:
                if name.lower() not in kept:
                    self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._relay()

        def do_HEAD(self) -> None:
            self._relay()

        def do_PUT(self) -> None:
            self._relay()

        def do_POST(self) -> None:
            self._relay()

        def do_DELETE(self) -> None:
            self._relay()

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the tests assert on what landed

    return Handler
