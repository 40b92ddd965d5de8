"""`bpfrun inspect [--json] BUNDLE`: what a bundle will do, read without privileges and without
loading anything: its probes, maps, outputs, the BPF helpers its code calls, what it needs of a
host, its parameters, the compiler that wrote it and its source."""

from __future__ import annotations

import hashlib
import json

from bpfrun.read import bundle_signer, read_bundle
from bpfrun.verify import verify
from bpfrun.verify_object import helpers_called, verify_object
from common import schema
from common.bundle import Bundle


def describe(path: str) -> dict:
    bundle = read_bundle(path)
    resources = bundle.resources
    verify(resources, allow_unsafe=True)  # inspecting runs nothing: say what is unsafe instead
    verify_object(resources, bundle.elf)
    return {
        "compiler": resources.compiler or "unknown",
        "signer": bundle_signer(path),
        "source_name": resources.source_name,
        "sha256": hashlib.sha256(bundle.elf).hexdigest(),
        "probes": [{"attach_point": probe.attach_point, "program": probe.program} for probe in resources.probes],
        "maps": [_map(spec) for spec in resources.maps],
        "outputs": [_output(event) for event in resources.events],
        "helpers": helpers_called(bundle.elf),
        "unsafe": ["system"] if resources.unsafe else [],
        "requires": {
            "arch": resources.requirements.arch,
            "kernel_fields": list(resources.requirements.kernel_fields),
            "kernel_layouts": list(resources.requirements.kernel_layouts),
            "probe_kinds": list(resources.requirements.probe_kinds),
            "tracepoints": list(resources.requirements.tracepoints),
            "helpers": list(resources.requirements.helpers),
        },
        "parameters": _parameters(bundle),
        "source": resources.source,
    }


def _map(spec: schema.MapSpec) -> dict:
    return {
        "name": spec.name,
        "kind": spec.aggregate or "value",
        "kernel_type": spec.kernel_type,
        "key": spec.key.kind if spec.key is not None else None,
        "value": spec.value.kind,
        "max_entries": spec.max_entries,
    }


def _output(event: schema.EventSpec) -> str:
    text = getattr(event, "format", None)
    return f"{event.KIND} {json.dumps(text)}" if text is not None else event.KIND


def _parameters(bundle: Bundle) -> list[str]:
    resources = bundle.resources
    fields = [field.name for field in resources.globals.fields] if resources.globals is not None else []
    positional = sorted(
        {name[len(prefix):] for name in fields for prefix in (schema.INTEGER_ARGUMENT, schema.STRING_ARGUMENT)
         if name.startswith(prefix) and name[len(prefix):].isdigit()}
        | {str(probe.rate_parameter) for probe in resources.probes if probe.rate_parameter},  # interval:ms:$1
        key=int,
    )  # fmt: skip
    options = [f"--{option.name} ({option.kind}, default {option.default})" for option in resources.options]
    return [f"${number}" for number in positional] + options


def text(description: dict) -> str:
    lines = [
        f"compiler: {description['compiler']}",
        f"signed by: {description['signer'] or 'nobody (unsigned)'}",
        f"source: {description['source_name']}",
        f"object sha256: {description['sha256']}",
        f"probes ({len(description['probes'])}):",
        *(f"  {probe['attach_point']}" for probe in description["probes"]),
        f"maps ({len(description['maps'])}):",
        *(f"  {m['name']}: {m['kind']} in a {m['kernel_type']} of {m['max_entries']}, key {m['key'] or 'none'}, value {m['value']}"
          for m in description["maps"]),  # fmt: skip
        f"outputs ({len(description['outputs'])}):",
        *(f"  {output}" for output in description["outputs"]),
        f"helpers: {', '.join(description['helpers'])}",
        f"unsafe: {', '.join(description['unsafe']) or 'none'}",
        f"requires: {description['requires']['arch']}",
        f"  probe kinds: {', '.join(description['requires']['probe_kinds']) or 'none'}",
        *(f"  tracepoint {tracepoint}" for tracepoint in description["requires"]["tracepoints"]),
        *(f"  {field}" for field in description["requires"]["kernel_fields"]),
        *(f"  {struct} laid out as compiled against (copied whole)" for struct in description["requires"]["kernel_layouts"]),
        f"parameters: {', '.join(description['parameters']) or 'none'}",
        "script:",
        *(f"  {line}" for line in description["source"].splitlines()),
    ]
    return "\n".join(map(_printable, lines)) + "\n"


def _printable(line: str) -> str:
    """Control characters as escapes: a name or a script must not move the cursor or forge lines."""
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in line)
