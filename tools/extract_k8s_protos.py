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

The gogo.proto import is dropped: the generated files import it but reference
no gogo type, only gogo custom options, which survive as unknown option fields
and do not matter for decoding. Source info (comments) is dropped to keep the
file small.

Usage: python tools/extract_k8s_protos.py [KUBECTL] [-o OUT]
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

from google.protobuf import descriptor_pb2

GZIP_MAGIC = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"  # Go's gzip.Writer: no name, mtime 0
GOGO = "github.com/gogo/protobuf/gogoproto/gogo.proto"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "kybern" / "api" / "data" / "k8s-protos.binpb"


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
