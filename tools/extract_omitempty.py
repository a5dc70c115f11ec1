#!/usr/bin/env python3
"""Which list and map fields of the built-in types are `omitempty`, read from a
kubectl binary.

kube-apiserver decodes every body into its Go type and encodes it again, so an
empty list or map in a field tagged `json:"x,omitempty"` is neither stored nor
returned (`webhooks: []` reads back without `webhooks`), while one without
omitempty stays `[]` (a Role's `rules: []`). The OpenAPI definitions cannot tell
the two apart (an `+optional` field without omitempty is not `required` either),
but Go keeps every struct tag in the binary for reflection, and kubectl links the
types of k8s.io/api and k8s.io/apimachinery. Each tag names the field's JSON name,
its options and its protobuf field (`json:"webhooks,omitempty" patchStrategy:...
protobuf:"bytes,2,rep,name=webhooks"`); identical tags are stored once, so a tag
is matched to the protobuf messages (kybern/api/data/k8s-protos.binpb, from
extract_k8s_protos.py) holding a repeated field of that name and number.

A field counts as omitempty only when every tag for its (name, number) has
omitempty, and the OpenAPI definition does not list it as required; anything in
doubt keeps its empty value, as kybern did before. Message fields embedded inline
(no property of that name in the OpenAPI definition) lend their fields to the
parent.

Output: kybern/api/data/omitempty.json, {OpenAPI definition name: [JSON field
names]}, read by kybern.api.omitempty.

Usage: python tools/extract_omitempty.py [KUBECTL] [-o OUT]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kybern.api import schemas  # noqa: E402

DATA = ROOT / "kybern" / "api" / "data"
PROTOS = DATA / "k8s-protos.binpb"
DEFAULT_OUT = DATA / "omitempty.json"
# a struct tag: json first, other keys (patchStrategy, patchMergeKey) between, then protobuf
TAG = re.compile(rb'json:"([^",]*)((?:,[a-z]+)*)"(?: [A-Za-z_]+:"[^"]*")*? '
                 rb'protobuf:"[a-z0-9]+,([0-9]+),(?:rep|opt|req),name=([A-Za-z0-9_]+)')
REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE


def tags(binary: bytes) -> dict[tuple[str, int], set[tuple[str, bool]]]:
    """(protobuf name, number) -> {(JSON name, omitempty)} over every tag in `binary`."""
    out: dict[tuple[str, int], set[tuple[str, bool]]] = defaultdict(set)
    for m in TAG.finditer(binary):
        name, opts, num, pname = m.groups()
        out[(pname.decode(), int(num))].add((name.decode(), b"omitempty" in opts.split(b",")))
    return out


def definition_name(proto_name: str) -> str:
    """k8s.io.api.core.v1.PodSpec -> io.k8s.api.core.v1.PodSpec"""
    return "io.k8s." + proto_name.removeprefix(".").removeprefix("k8s.io.")


def extract(binary: bytes) -> dict[str, list[str]]:
    found = tags(binary)
    fds = descriptor_pb2.FileDescriptorSet.FromString(PROTOS.read_bytes())
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    for f in fds.file:
        for msg in f.message_type:
            messages[f"{f.package}.{msg.name}"] = msg

    def own(full: str, seen: frozenset[str] = frozenset()) -> set[str]:
        msg = messages[full]
        defn = schemas.definition(definition_name(full)) or {}
        props, required = defn.get("properties") or {}, set(defn.get("required") or ())
        out: set[str] = set()
        for fd in msg.field:
            if fd.label == REPEATED:  # a list, or a map (repeated map entries on the wire)
                ev = found.get((fd.name, fd.number)) or set()
                if len(ev) == 1:
                    name, omit = next(iter(ev))
                    if omit and name in props and name not in required:
                        out.add(name)
            elif fd.type == MESSAGE and props and fd.name not in props and fd.label != REPEATED:
                sub = fd.type_name.removeprefix(".")
                if sub in messages and sub not in seen:  # embedded inline: its fields are ours
                    out |= own(sub, seen | {full})
        return out

    result: dict[str, list[str]] = {}
    for full in messages:
        if not full.startswith("k8s.io."):
            continue
        names = own(full)
        if names and schemas.definition(definition_name(full)):
            result[definition_name(full)] = sorted(names)
    return dict(sorted(result.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kubectl", nargs="?", default="/usr/bin/kubectl")
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    result = extract(Path(args.kubectl).read_bytes())
    args.out.write_text(json.dumps(result, indent=0, separators=(",", ":")) + "\n")
    print(f"{args.out}: {len(result)} definitions, {sum(map(len, result.values()))} fields")


if __name__ == "__main__":
    main()
