#!/usr/bin/env python3
"""Checks that a running telesub hub works with a client that shares no code with it.

The Rust client SDK and the hub are built from the same crates, so a bug in how they
encode messages, negotiate TLS or name services could cancel out between them. This
script talks to the hub with Python's grpcio (a separate gRPC and TLS implementation),
compiling the stubs from the repository's .proto files at run time, and checks:

  * the standard health service answers SERVING over mutual TLS;
  * telesub.v1.Members/WhoAmI names the organisation whose certificate was used;
  * server reflection lists the telesub and health services;
  * a call without a client certificate is refused;
  * a call with a certificate from another CA is refused;
  * a batch with 151 bad records, pushed ten times, comes back INVALID_ARGUMENT with its
    field violations every time (grpcio refuses trailers over 8 KiB by default).

Usage (scripts/test.sh starts the hub and runs this):

    python interop.py --port PORT --tls-dir DIR --proto-dir proto/ [--foreign-tls-dir DIR2]

DIR is a folder written by `telesub pki init`. DIR2, optional, is another such folder,
i.e. from a different CA; without it a throwaway self-signed certificate is made with the
`cryptography` package when that is installed, and the check is skipped otherwise.

Prints one line per check and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.resources
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# gRPC core logs every refused handshake at ERROR level, which reads like a failure in the
# output of the checks that expect refusals; the checks print the reasons themselves.
# Set GRPC_VERBOSITY=ERROR (or DEBUG) to see them anyway.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # noqa: E402 - must follow the environment set-up above
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # noqa: E402
from grpc_tools import protoc  # noqa: E402

# Deadline for calls that should succeed; generous because the first call also connects.
CALL_TIMEOUT = 10.0
# Deadline for calls that should be refused: the refusal comes at the TLS handshake, so a
# few seconds is plenty, and hitting the deadline also counts as "refused".
REFUSED_TIMEOUT = 5.0


class Checks:
    """Runs named checks, printing one line each, and remembers which failed."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0
        self.skipped = 0

    def run(self, name: str, check: Callable[[], str | None]) -> None:
        """`check` returns a detail string on success and raises on failure."""
        try:
            detail = check()
        except Exception as err:  # noqa: BLE001 - any error is a failed check
            self.failed.append(name)
            print(f"FAIL  {name}: {describe(err)}", flush=True)
        else:
            self.passed += 1
            print(f"ok    {name}" + (f" ({detail})" if detail else ""), flush=True)

    def skip(self, name: str, why: str) -> None:
        self.skipped += 1
        print(f"skip  {name}: {why}", flush=True)


class CheckFailed(Exception):
    pass


def describe(err: BaseException) -> str:
    if isinstance(err, grpc.RpcError):
        return f"gRPC {err.code().name}: {err.details()}"
    return f"{type(err).__name__}: {err}"


def compile_protos(proto_dir: Path, out_dir: Path) -> None:
    """Generates *_pb2.py and *_pb2_grpc.py for every .proto under proto_dir."""
    protos = sorted(str(p.relative_to(proto_dir)) for p in proto_dir.rglob("*.proto"))
    if not protos:
        raise SystemExit(f"interop: no .proto files under {proto_dir}")
    # grpcio-tools ships google/protobuf/*.proto (timestamp.proto and friends).
    bundled = importlib.resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={proto_dir}",
        f"--proto_path={bundled}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"interop: protoc failed on {', '.join(protos)}")


# google.rpc.Status and BadRequest, the two messages of the hub's error details read here
# (the repository does not vendor google/rpc, and grpcio-status would add a dependency).
GOOGLE_RPC = {
    "google/rpc/status.proto": """syntax = "proto3";
package google.rpc;
import "google/protobuf/any.proto";
message Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
""",
    "google/rpc/error_details.proto": """syntax = "proto3";
package google.rpc;
message BadRequest {
  message FieldViolation { string field = 1; string description = 2; }
  repeated FieldViolation field_violations = 1;
}
""",
}


def compile_google_rpc(out_dir: Path) -> None:
    src = out_dir / "google-rpc-src"
    for name, text in GOOGLE_RPC.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    compile_protos(src, out_dir)


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise SystemExit(f"interop: cannot read {path}: {err.strerror}") from err


def channel(
    target: str,
    ca: bytes,
    key: bytes | None = None,
    cert: bytes | None = None,
) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    return grpc.secure_channel(target, creds)


def health_check(ch: grpc.Channel, timeout: float) -> int:
    stub = health_pb2_grpc.HealthStub(ch)
    return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout).status


def expect_refused(ch: grpc.Channel) -> str:
    """Passes when a health check on `ch` fails with any gRPC error."""
    try:
        status = health_check(ch, REFUSED_TIMEOUT)
    except grpc.RpcError as err:
        return f"refused: {describe(err)}"
    raise CheckFailed(
        f"the hub answered ({health_pb2.HealthCheckResponse.ServingStatus.Name(status)}) "
        "instead of refusing the connection"
    )


def self_signed(org: str) -> tuple[bytes, bytes] | None:
    """A throwaway self-signed key and certificate naming `org`, or None when the
    `cryptography` package is not installed (it is not a dependency of grpcio)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return None
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, org)])
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - 3.10-compatible
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        # The same identity a genuine certificate for `org` carries, so only the CA differs.
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:telesub:org:{org}")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def run_checks(
    args: argparse.Namespace, target: str, ca: bytes, key: bytes, cert: bytes, work: Path
) -> int:
    compile_protos(args.proto_dir.resolve(), work)
    compile_google_rpc(work)
    sys.path.insert(0, str(work))
    members_pb2 = importlib.import_module("telesub.v1.members_pb2")
    members_pb2_grpc = importlib.import_module("telesub.v1.members_pb2_grpc")

    print(f"interop: grpcio {grpc.__version__} against {target} as {args.org}", flush=True)
    checks = Checks()
    mtls = channel(target, ca, key, cert)

    def health_serving() -> str:
        status = health_check(mtls, CALL_TIMEOUT)
        if status != health_pb2.HealthCheckResponse.SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            raise CheckFailed(f"status {name}, expected SERVING")
        return "SERVING"

    def who_am_i() -> str:
        stub = members_pb2_grpc.MembersStub(mtls)
        response = stub.WhoAmI(members_pb2.WhoAmIRequest(), timeout=CALL_TIMEOUT)
        if response.member.code != args.org:
            raise CheckFailed(f"member.code is {response.member.code!r}, expected {args.org!r}")
        return f"member.code={response.member.code}"

    def reflection_lists_services() -> str:
        stub = reflection_pb2_grpc.ServerReflectionStub(mtls)
        requests = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        services: set[str] = set()
        for response in stub.ServerReflectionInfo(requests, timeout=CALL_TIMEOUT):
            if response.HasField("error_response"):
                raise CheckFailed(f"reflection error: {response.error_response.error_message}")
            services.update(s.name for s in response.list_services_response.service)
        missing = {"telesub.v1.Members", "grpc.health.v1.Health"} - services
        if missing:
            raise CheckFailed(f"missing {sorted(missing)}; listed {sorted(services)}")
        return ", ".join(sorted(services))

    checks.run("health check over mTLS returns SERVING", health_serving)
    checks.run(f"telesub.v1.Members/WhoAmI returns member.code == {args.org!r}", who_am_i)
    checks.run(
        "server reflection lists telesub.v1.Members and grpc.health.v1.Health",
        reflection_lists_services,
    )
    checks.run(
        "health check without a client certificate is refused",
        lambda: expect_refused(channel(target, ca)),
    )

    foreign_name = "health check with a certificate from another CA is refused"
    foreign: tuple[bytes, bytes] | None
    if args.foreign_tls_dir:
        foreign_dir = args.foreign_tls_dir / "clients"
        foreign = (read(foreign_dir / f"{args.org}.key"), read(foreign_dir / f"{args.org}.crt"))
        source = "certificate from --foreign-tls-dir"
    else:
        foreign = self_signed(args.org)
        source = "self-signed certificate"
    if foreign is None:
        checks.skip(
            foreign_name,
            "no --foreign-tls-dir given and the `cryptography` package is not installed",
        )
    else:
        foreign_key, foreign_cert = foreign
        checks.run(
            f"{foreign_name} ({source})",
            lambda: expect_refused(channel(target, ca, foreign_key, foreign_cert)),
        )

    def long_errors_reach_grpcio() -> str:
        households_pb2 = importlib.import_module("telesub.v1.households_pb2")
        households_pb2_grpc = importlib.import_module("telesub.v1.households_pb2_grpc")
        status_pb2 = importlib.import_module("google.rpc.status_pb2")
        error_details_pb2 = importlib.import_module("google.rpc.error_details_pb2")
        clients = args.tls_dir / "clients"
        labour = channel(target, ca, read(clients / "DOLISA.key"), read(clients / "DOLISA.crt"))
        stub = households_pb2_grpc.HouseholdRegistryStub(labour)

        def requests():
            header = households_pb2.BatchHeader(
                batch_id="interop-long-errors",
                kind=households_pb2.BATCH_KIND_DELTA,
                review_period="2025-03",
                effective_date="2025-03-01",
            )
            yield households_pb2.PushBatchRequest(header=header)
            records = []
            for n in range(151):
                # Two bad members each: a citizen ID with a letter, one with a birth year
                # that does not match it; long codes and Vietnamese names make long details.
                members = [
                    households_pb2.HouseholdMember(
                        citizen_id=f"06708{n:06d}X",
                        full_name="Nguyễn Thị Hồng Nhung",
                        relationship=households_pb2.RELATIONSHIP_HEAD,
                        birth_year=1980,
                    ),
                    households_pb2.HouseholdMember(
                        citizen_id=f"067199{n:06d}",
                        full_name="Trần Văn Đức Thịnh",
                        relationship=households_pb2.RELATIONSHIP_SPOUSE,
                        birth_year=1982,
                    ),
                ]
                data = households_pb2.HouseholdData(
                    category=households_pb2.CATEGORY_POOR,
                    head_name="Nguyễn Thị Hồng Nhung",
                    commune_code="24611",
                    address="Tổ dân phố 3",
                    members=members,
                )
                code = f"HH-24611-BUÔN-JA-RÁH-{n:07d}"
                records.append(households_pb2.HouseholdRecord(household_code=code, upsert=data))
            yield households_pb2.PushBatchRequest(records=households_pb2.RecordChunk(records=records))

        listed = set()
        for attempt in range(10):
            try:
                stub.PushBatch(requests(), timeout=CALL_TIMEOUT)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise CheckFailed(f"attempt {attempt + 1}: {describe(err)}") from None
                trailers = dict(err.trailing_metadata() or ())
                raw = trailers.get("grpc-status-details-bin")
                if not raw:
                    raise CheckFailed(f"attempt {attempt + 1}: no error details in the trailers") from None
                status = status_pb2.Status.FromString(raw)
                violations = []
                for detail in status.details:
                    if detail.type_url.endswith("google.rpc.BadRequest"):
                        bad = error_details_pb2.BadRequest.FromString(detail.value)
                        violations.extend(bad.field_violations)
                if len(violations) < 20:
                    raise CheckFailed(f"attempt {attempt + 1}: only {len(violations)} violations") from None
                if "problems in all" not in violations[-1].description:
                    raise CheckFailed(f"attempt {attempt + 1}: no total: {violations[-1]}") from None
                listed.add(len(violations))
            else:
                raise CheckFailed(f"attempt {attempt + 1}: the bad batch was accepted")
        labour.close()
        return f"10 × INVALID_ARGUMENT with {sorted(listed)} violations listed, the last giving the total"

    checks.run(
        "a batch with 151 bad records comes back with its violations, ten times out of ten",
        long_errors_reach_grpcio,
    )

    mtls.close()
    summary = (
        f"interop: {checks.passed} passed, {len(checks.failed)} failed, {checks.skipped} skipped"
    )
    if checks.failed:
        print(
            f"{summary}\ninterop: FAILED: {'; '.join(checks.failed)}", file=sys.stderr, flush=True
        )
        return 1
    print(summary, flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="the hub's port on localhost")
    parser.add_argument(
        "--tls-dir", type=Path, required=True, help="folder from `telesub pki init`"
    )
    parser.add_argument(
        "--proto-dir", type=Path, required=True, help="the repository's proto/ folder"
    )
    parser.add_argument(
        "--org", default="VNPT", help="organisation whose certificate to use (default VNPT)"
    )
    parser.add_argument(
        "--foreign-tls-dir",
        type=Path,
        help="a second `telesub pki init` folder (another CA) with a certificate for --org",
    )
    args = parser.parse_args()

    # The server certificate is issued for `localhost`, so that is the name to dial.
    target = f"localhost:{args.port}"
    ca = read(args.tls_dir / "ca.crt")
    key = read(args.tls_dir / "clients" / f"{args.org}.key")
    cert = read(args.tls_dir / "clients" / f"{args.org}.crt")

    with tempfile.TemporaryDirectory(prefix="telesub-interop-") as work:
        return run_checks(args, target, ca, key, cert, Path(work))


if __name__ == "__main__":
    sys.exit(main())
