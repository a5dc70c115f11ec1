#!/usr/bin/env python3
"""Extract the Kubernetes protobuf wire schema from a kubectl binary.

kubectl (like every client-go program) links the gogo-generated Go types of
k8s.io/api and k8s.io/apimachinery, and each generated package registers its
`generated.proto` as a gzipped FileDescriptorProto. Scanning the binary for gzip
streams and parsing each as a FileDescriptorProto recovers the exact schema the
client speaks, without needing the .proto sources or protoc.

Output: one serialized google.protobuf.FileDescriptorSet holding the k8s.io/*
files in dependency order (a DescriptorPool can Add them front to back), written
to kybern/api/data/k8s-protos.binpb, which kybern.apiserver.protobuf loads.

Second output: gnostic's `openapiv2/OpenAPIv2.proto` (package openapi.v2, the
schema of the protobuf `/openapi/v2` document client-go downloads) with its
imports, written to kybern/api/data/gnostic-openapiv2.binpb for
kybern.api.openapi_proto. gnostic-models is built with google.golang.org/protobuf,
which embeds descriptors uncompressed (`file_..._rawDesc`), so these are found by
their leading `name` field rather than as gzip streams.

The gogo.proto import is dropped: the generated files import it but reference
no gogo type, only gogo custom options, which survive as unknown option fields
and do not matter for decoding. Source info (comments) is dropped to keep the
file small.

Usage: python tools/extract_k8s_protos.py [KUBECTL] [-o OUT] [--gnostic-out OUT2]
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

from google.protobuf import descriptor_pb2

GZIP_MAGIC = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"  # Go's gzip.Writer: no name, mtime 0
GOGO = "github.com/gogo/protobuf/gogoproto/gogo.proto"
DATA = Path(__file__).resolve().parent.parent / "kybern" / "api" / "data"
DEFAULT_OUT = DATA / "k8s-protos.binpb"
GNOSTIC = "openapiv2/OpenAPIv2.proto"
DEFAULT_GNOSTIC_OUT = DATA / "gnostic-openapiv2.binpb"
# FileDescriptorProto field number -> wire type (2 = length-delimited, 0 = varint);
# 10/11 (public/weak dependency) may also come packed.
_FDP_WIRE = {1: {2}, 2: {2}, 3: {2}, 4: {2}, 5: {2}, 6: {2}, 7: {2}, 8: {2}, 9: {2},
             10: {0, 2}, 11: {0, 2}, 12: {2}, 14: {0}}


def scan(binary: bytes) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Every FileDescriptorProto found as a gzip stream in `binary`, by file name."""
    found: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    i = binary.find(GZIP_MAGIC)
    while i >= 0:
        try:
            # wbits=31: gzip framing; decompressobj stops at the stream's end,
            # whatever bytes follow in the binary.
            raw = zlib.decompressobj(31).decompress(binary[i:i + (8 << 20)])
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except Exception:  # noqa: BLE001 - most gzip-looking spots are not descriptors
            fd = None
        if fd is not None and fd.name.endswith(".proto") and fd.package:
            found.setdefault(fd.name, fd)
        i = binary.find(GZIP_MAGIC, i + 1)
    return found


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def raw_descriptor(binary: bytes, name: str) -> descriptor_pb2.FileDescriptorProto | None:
    """The uncompressed FileDescriptorProto whose `name` field is `name`.

    The blob has no length prefix: walk its top-level fields from the `name`
    field on and stop at the first byte that cannot continue a FileDescriptorProto.
    """
    encoded = name.encode()
    needle = b"\n" + bytes([len(encoded)]) + encoded
    i = binary.find(needle)
    while i >= 0:
        j = i
        try:
            while j < len(binary):
                tag, k = _varint(binary, j)
                field, wire = tag >> 3, tag & 7
                if wire not in _FDP_WIRE.get(field, ()):
                    break
                if wire == 0:
                    _, k = _varint(binary, k)
                else:
                    size, k = _varint(binary, k)
                    k += size
                if k > len(binary):
                    break
                j = k
            fd = descriptor_pb2.FileDescriptorProto.FromString(binary[i:j])
        except Exception:  # noqa: BLE001 - a false match; keep looking
            fd = None
        if fd is not None and fd.name == name and fd.package:
            return fd
        i = binary.find(needle, i + 1)
    return None


def build_gnostic_set(binary: bytes) -> descriptor_pb2.FileDescriptorSet:
    """OpenAPIv2.proto and its imports (google/protobuf/any.proto), dependencies first."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in files:
            return
        fd = raw_descriptor(binary, name)
        if fd is None:
            raise SystemExit(f"{name!r} not embedded in this binary")
        fd.ClearField("source_code_info")
        files[name] = fd
        for dep in fd.dependency:
            visit(dep)
        ordered.append(name)

    visit(GNOSTIC)
    fds = descriptor_pb2.FileDescriptorSet()
    fds.file.extend(files[n] for n in ordered)
    return fds


def _strip(fd: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    out = descriptor_pb2.FileDescriptorProto()
    out.CopyFrom(fd)
    out.ClearField("source_code_info")
    if GOGO in out.dependency:
        deps = [d for d in out.dependency if d != GOGO]
        # public/weak dependency entries are indices into `dependency`; keep them
        # pointing at the same files after removing gogo.
        old = list(out.dependency)
        pub = [deps.index(old[j]) for j in out.public_dependency if old[j] != GOGO]
        weak = [deps.index(old[j]) for j in out.weak_dependency if old[j] != GOGO]
        del out.dependency[:]
        out.dependency.extend(deps)
        del out.public_dependency[:]
        out.public_dependency.extend(pub)
        del out.weak_dependency[:]
        out.weak_dependency.extend(weak)
    return out


def build_set(found: dict[str, descriptor_pb2.FileDescriptorProto]) -> descriptor_pb2.FileDescriptorSet:
    """The k8s.io files plus whatever they import (except gogo), dependencies first."""
    files = {n: _strip(fd) for n, fd in found.items()}
    wanted = sorted(n for n in files if n.startswith("k8s.io/"))
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in files:
            raise SystemExit(f"missing dependency {name!r}: not embedded in this binary")
        for dep in files[name].dependency:
            visit(dep)
        ordered.append(name)

    for n in wanted:
        visit(n)
    fds = descriptor_pb2.FileDescriptorSet()
    fds.file.extend(files[n] for n in ordered)
    return fds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kubectl", nargs="?", default="/usr/bin/kubectl")
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--gnostic-out", type=Path, default=DEFAULT_GNOSTIC_OUT)
    args = ap.parse_args(argv)
    binary = Path(args.kubectl).resolve().read_bytes()
    fds = build_set(scan(binary))
    core = "k8s.io/api/core/v1/generated.proto"
    if core not in {f.name for f in fds.file}:
        print(f"{args.kubectl}: no {core} found; is this a client-go binary?", file=sys.stderr)
        return 1
    # Check the set loads before writing it.
    from google.protobuf import descriptor_pool
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = fds.SerializeToString(deterministic=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(fds.file)} files, {len(data)} bytes)")
    gnostic = build_gnostic_set(binary)
    pool = descriptor_pool.DescriptorPool()
    for f in gnostic.file:
        pool.Add(f)
    pool.FindMessageTypeByName("openapi.v2.Document")
    data = gnostic.SerializeToString(deterministic=True)
    args.gnostic_out.write_bytes(data)
    print(f"wrote {args.gnostic_out} ({len(gnostic.file)} files, {len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
