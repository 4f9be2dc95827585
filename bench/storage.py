"""Storage benchmark: encrypted vault vs raw boto3 on the same SeaweedFS, RSS, decrypt speed.

Run with ``python -m bench.storage``. It starts its own ``weed mini`` on free loopback ports
in a temporary directory and prints figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from storage.cipher import ObjectBinding, decrypt_stream, encrypt_stream
from storage.embedded import PORT_SPAN, EmbeddedS3
from storage.keys import LocalKeyring
from storage.objectstore import build_s3_client
from storage.settings import StorageSettings
from storage.vault import Vault, build_vault

MIB = 1024 * 1024
BLOCK = os.urandom(MIB)  # incompressible; reused so making input costs nothing
CASE = "bench-case"


def plaintext(total: int) -> Iterator[bytes]:
    """``total`` bytes as 1 MiB chunks, never holding more than one MiB."""
    for _ in range(total // MIB):
        yield BLOCK
    if total % MIB:
        yield BLOCK[: total % MIB]


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def compare_puts(vault: Vault, settings: StorageSettings, source: Path, rounds: int) -> None:
    """Best-of-``rounds`` MB/s of vault.put and boto3 upload_fileobj of the same file,
    alternating, after one untimed warm-up of each."""
    client, bucket, size = vault.store.client, settings.bucket, source.stat().st_size
    transfer = TransferConfig(
        multipart_threshold=settings.part_size,
        multipart_chunksize=settings.part_size,
        max_concurrency=settings.upload_concurrency,
    )
    wrapped = vault.new_case_key(CASE)

    def raw_put() -> None:
        with source.open("rb") as handle:
            client.upload_fileobj(handle, bucket, "raw/object", Config=transfer)

    def vault_put() -> None:
        with source.open("rb") as handle:
            vault.put(case_id=CASE, wrapped_key=wrapped, source=handle)

    raw_put()  # warm-up, untimed: a fresh SeaweedFS allocates its volumes on the first writes
    vault_put()
    vault.erase_case(CASE)
    raw_times, vault_times = [], []
    for _ in range(rounds):
        raw_times.append(timed(raw_put))
        vault_times.append(timed(vault_put))
        client.delete_object(Bucket=bucket, Key="raw/object")
        vault.erase_case(CASE)
    raw_rate, vault_rate = size / MIB / min(raw_times), size / MIB / min(vault_times)
    print(
        f"put a {size // MIB} MiB file: part {settings.part_size // MIB} MiB, "
        f"{settings.upload_concurrency} parts in parallel, "
        f"segment {settings.segment_size // 1024} KiB"
    )
    print(f"  raw boto3 upload_fileobj : {raw_rate:8.1f} MB/s (best of {rounds})")
    print(f"  encrypted vault.put      : {vault_rate:8.1f} MB/s (best of {rounds})")
    print(f"  ratio vault / raw        : {vault_rate / raw_rate:8.2f}x  (target >= 0.90)")


def measure_rss(settings: StorageSettings, size: int) -> None:
    """Peak RSS of a fresh process putting, then of one reading, a ``size`` object."""
    common = [
        "--endpoint", settings.endpoint_url or "", "--access-key", settings.access_key_id,
        "--secret-key", settings.secret_access_key.get_secret_value(),
        "--keyring", str(settings.keyring_path), "--size", str(size),
        "--concurrency", str(settings.upload_concurrency),
    ]  # fmt: skip
    put = _child(["put", *common])
    get = _child(
        ["get", *common, "--wrapped", put["wrapped"], "--object-key", put["object_key"],
         "--sha256", put["sha256"]]
    )  # fmt: skip
    print(f"peak RSS with a {size // MIB} MiB object from a generator (fresh processes, VmHWM)")
    print(f"  after imports and setup     : {put['baseline_mb']:6.1f} MB")
    print(
        f"  vault.put                   : {put['peak_mb']:6.1f} MB  (target <= 100; "
        f"{put['seconds']:.1f} s, {size / MIB / put['seconds']:.0f} MB/s)"
    )
    print(
        f"  vault.open read to the end  : {get['peak_mb']:6.1f} MB  "
        f"({get['seconds']:.1f} s, {size / MIB / get['seconds']:.0f} MB/s, SHA-256 verified)"
    )


def _child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.storage", "--child", *args],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def decrypt_speed(vault: Vault, size: int) -> None:
    """MB/s of reading a whole object with its data key cached, and of the cipher alone."""
    wrapped = vault.new_case_key(CASE)
    stored = vault.put(case_id=CASE, wrapped_key=wrapped, source=plaintext(size))

    def drain() -> None:
        for _ in vault.open(
            case_id=CASE, wrapped_key=wrapped, object_key=stored.object_key, sha256=stored.sha256
        ):
            pass

    drain()  # the data key is now cached
    seconds = min(timed(drain) for _ in range(2))
    key, binding = os.urandom(32), ObjectBinding(CASE, "0" * 32)
    sealed = list(
        encrypt_stream(
            plaintext(size), data_key=key, binding=binding, segment_size=vault.segment_size
        )
    )
    in_memory = timed(lambda: sum(1 for _ in decrypt_stream(sealed, data_key=key, binding=binding)))
    vault.erase_case(CASE)
    print(f"decrypt {size // MIB} MiB with the data key cached")
    print(f"  vault.open from SeaweedFS, SHA-256 checked : {size / MIB / seconds:8.1f} MB/s")
    print(f"  cipher alone, in memory                    : {size / MIB / in_memory:8.1f} MB/s")


def child(argv: list[str]) -> None:
    """One measured operation in this fresh process; prints a JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("op", choices=["put", "get"])
    flags = ("endpoint", "access-key", "secret-key", "keyring", "wrapped", "object-key", "sha256")
    for flag in flags:
        parser.add_argument(f"--{flag}", default="")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    settings = StorageSettings(
        endpoint_url=args.endpoint, access_key_id=args.access_key,
        secret_access_key=args.secret_key, bucket="bench", keyring_path=Path(args.keyring),
        upload_concurrency=args.concurrency,
    )  # fmt: skip
    vault = build_vault(settings, s3_client=build_s3_client(settings))
    vault.check()
    result: dict[str, str | float] = {"baseline_mb": _peak_mb()}
    start = time.perf_counter()
    if args.op == "put":
        wrapped = vault.new_case_key(CASE)
        stored = vault.put(case_id=CASE, wrapped_key=wrapped, source=plaintext(args.size))
        result |= {"wrapped": wrapped.hex(), "object_key": stored.object_key}
        result |= {"sha256": stored.sha256}
    else:
        for _ in vault.open(
            case_id=CASE,
            wrapped_key=bytes.fromhex(args.wrapped),
            object_key=args.object_key,
            sha256=args.sha256,
        ):
            pass
    result |= {"seconds": time.perf_counter() - start, "peak_mb": _peak_mb()}
    print(json.dumps(result))


def _peak_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries the parent's peak
    over fork and exec, so a child would report the benchmark's own footprint."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def free_port_block(span: int) -> int:
    """First of ``span`` consecutive free loopback ports (not tests.services: that would
    pull pytest into the measured child processes)."""
    for base in range(30000 + os.getpid() % 1000 * 20, 60000, span):
        if all(_port_free(port) for port in range(base, base + span)):
            return base
    raise RuntimeError("no free block of loopback ports")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> None:
    """Start SeaweedFS, run each measurement, print the figures."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.storage")
    parser.add_argument("--put-mib", type=int, default=512, help="size of the put comparison")
    parser.add_argument("--rss-mib", type=int, default=1024, help="object size for peak RSS")
    parser.add_argument("--decrypt-mib", type=int, default=256, help="object size for decrypt")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=None, help="parts in parallel")
    options = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as temp:
        keyring = Path(temp) / "keyring.json"
        LocalKeyring.ensure(keyring)
        server = EmbeddedS3(
            data_dir=Path(temp) / "seaweedfs", s3_port=free_port_block(PORT_SPAN),
            access_key="bench", secret_key=secrets.token_hex(16), bucket="bench",
        )  # fmt: skip
        with server:
            settings = StorageSettings(
                endpoint_url=server.endpoint_url, access_key_id=server.access_key,
                secret_access_key=server.secret_key, bucket="bench", keyring_path=keyring,
            )  # fmt: skip
            if options.concurrency:
                settings.upload_concurrency = options.concurrency
            vault = build_vault(settings, s3_client=build_s3_client(settings))
            vault.ensure_bucket()
            source = Path(temp) / "plaintext.bin"
            source.write_bytes(b"")
            with source.open("ab") as handle:
                for chunk in plaintext(options.put_mib * MIB):
                    handle.write(chunk)
            compare_puts(vault, settings, source, options.rounds)
            source.unlink()
            measure_rss(settings, options.rss_mib * MIB)
            decrypt_speed(vault, options.decrypt_mib * MIB)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
