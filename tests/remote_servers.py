"""Real storage servers on 127.0.0.1 for the DVC remote tests (tests/integration/test_remotes.py).

- `s3_server`: moto's S3 server mode (`moto_server`), the S3-compatible server DVC's own tests use. Its IAM
  is switched on after set-up, so only the access key made for the test is accepted: that is what lets a test
  show that a wrong secret key is refused (moto accepts any key while its IAM is off, its default).
- `ssh_server`: Debian's OpenSSH server (`/usr/sbin/sshd`) on a free high port, from a scratch sshd_config with
  its own host key and a throw-away client key made by ssh-keygen. Nothing under /etc/ssh is read or changed.

Each server runs in its own process group and is stopped by its PID when the `with` block ends. Both keep
their logs in the given folder, and a server that does not come up fails with the end of its log.
"""
from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOCALHOST = "127.0.0.1"
MOTO_SERVER = str(Path(sys.executable).parent / "moto_server")
SSHD = "/usr/sbin/sshd"       # sshd re-executes itself, so it must be started by its absolute path
START_TIMEOUT_S = 30


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class SshServer:
    port: int
    user: str
    keyfile: Path          # the key in the server's authorized_keys
    stranger_keyfile: Path  # a key the server has never seen: a wrong credential


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


def _wait_until_listening(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}:\n{_tail(log)}")
        try:
            socket.create_connection((LOCALHOST, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{process.args[0]} is not listening on port {port} after {START_TIMEOUT_S} s:\n{_tail(log)}")
            time.sleep(0.1)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _stop(process: subprocess.Popen) -> None:
    """Stop the server's process group by its PID: SIGTERM, then SIGKILL if it has not gone in 10 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def _server_process(command: list[str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    with log.open("ab") as log_file:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_until_listening(process, port, log)
        yield process
    finally:
        _stop(process)


# --- S3 (moto) ---------------------------------------------------------------------------------------------

def _s3_user_with_a_bucket(endpoint_url: str, bucket: str) -> tuple[str, str]:
    """While moto's IAM is still off: a user allowed everything on S3, its access key, and the bucket."""
    import boto3   # only these tests need boto3 (it comes with dvc-s3)

    admin = {"endpoint_url": endpoint_url, "region_name": "us-east-1",
             "aws_access_key_id": "set-up", "aws_secret_access_key": "set-up"}
    iam = boto3.client("iam", **admin)
    iam.create_user(UserName="dvc")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="dvc", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="dvc")["AccessKey"]
    boto3.client("s3", **admin).create_bucket(Bucket=bucket)
    return key["AccessKeyId"], key["SecretAccessKey"]


def _switch_on_moto_iam(endpoint_url: str) -> None:
    """From now on moto checks every request's key and signature (its /moto-api/reset-auth, count 0)."""
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@contextmanager
def s3_server(folder: Path, bucket: str = "caffepipe") -> Iterator[S3Server]:
    """moto's S3 server on a free port of 127.0.0.1 with one bucket and one IAM user's access key."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    endpoint_url = f"http://{LOCALHOST}:{port}"
    with _server_process([MOTO_SERVER, "-H", LOCALHOST, "-p", str(port)], port, folder / "moto.log"):
        access_key_id, secret_access_key = _s3_user_with_a_bucket(endpoint_url, bucket)
        _switch_on_moto_iam(endpoint_url)
        yield S3Server(endpoint_url, bucket, access_key_id, secret_access_key)


# --- SSH (OpenSSH) -------------------------------------------------------------------------------------------

def _new_key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


def _sshd_config(folder: Path, port: int, host_key: Path, authorized_keys: Path) -> Path:
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}",
        f"ListenAddress {LOCALHOST}",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized_keys}",
        f"PidFile {folder / 'sshd.pid'}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",   # the tests run as root in CI; a key is the only way in
        "UsePAM no",                            # PAM would want a full login session set-up
        "StrictModes no",                       # the key files live under the test's temporary folder
        "Subsystem sftp internal-sftp",         # dvc-ssh works over SFTP; no sftp-server binary needed
    ]) + "\n")
    return config


@contextmanager
def ssh_server(folder: Path) -> Iterator[SshServer]:
    """Debian's sshd on a free port of 127.0.0.1, letting the current user in with a throw-away key only."""
    folder.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # sshd's privilege-separation folder (no systemd here)
    keyfile = _new_key(folder / "client_key")
    stranger_keyfile = _new_key(folder / "stranger_key")
    authorized_keys = folder / "authorized_keys"
    authorized_keys.write_text((folder / "client_key.pub").read_text())
    port = free_port()
    config = _sshd_config(folder, port, _new_key(folder / "host_key"), authorized_keys)
    log = folder / "sshd.log"
    with _server_process([SSHD, "-D", "-f", str(config), "-E", str(log)], port, log):
        yield SshServer(port, getpass.getuser(), keyfile, stranger_keyfile)
