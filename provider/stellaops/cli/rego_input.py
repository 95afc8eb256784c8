"""``stella rego input``: every document of Kubernetes manifest files as ONE JSON ``kind: List``,
for ``opa eval --input`` (threat T-F43, docs/policies.md "Pipelines: opa eval").

``opa eval --input file.yaml`` reads only the first YAML document of the file: a gate run on a
multi-document file judges one object and passes the rest, which ``kubectl apply -f`` deploys.
This converter reads every document of every file and refuses, rather than guesses, whatever it
cannot carry over unchanged: no documents at all, a document that is not a mapping (an object),
a duplicate key or a YAML merge key ``<<`` (YAML readers disagree on which value wins: PyYAML lets
an explicit key override a merged one, Go's YAML in kubectl applies keys in document order,
threat T-F44), invalid YAML or UTF-8, values JSON
cannot hold (binary, NaN, infinity) and alias bombs (a document whose expanded size is huge).

YAML is read with PyYAML's safe loader, with three changes: duplicate keys and merge keys are errors, and dates
stay strings (Kubernetes reads YAML as JSON, where ``2026-12-08`` is the string it looks like).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ..errors import StellaError

# The most nodes one document may expand to (aliases counted each time they are used), and the
# most bytes one file may hold: far above any real manifest, far below an alias bomb's expansion.
MAX_NODES = 2_000_000
MAX_FILE_BYTES = 64 * 1024 * 1024


class ManifestInputError(StellaError):
    """A manifest file cannot be converted without losing or changing what it says: exit 2."""

    reason = "REQUEST_INVALID"
    exit_code = 2


MERGE_KEY_REFUSED = "YAML merge keys (<<) are refused: YAML readers disagree on which value wins"


class _RefusedYAML(yaml.constructor.ConstructorError):
    """Valid YAML this converter refuses (a duplicate key, a merge key): its text says why."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and merge keys and keeps timestamps as strings."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            # T-F44: `<<` plain, quoted or `!!merge`-tagged, and any `!!merge` key: refused before
            # SafeLoader would merge it (Go's YAML lets later keys win, PyYAML explicit keys).
            if key_node.tag == "tag:yaml.org,2002:merge" or (
                    isinstance(key_node, yaml.ScalarNode) and key_node.value == "<<"):
                raise _RefusedYAML(None, None, MERGE_KEY_REFUSED, key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key (a mapping or list as key): SafeLoader refuses it below
                continue
            if duplicate:
                raise _RefusedYAML(
                    None, None, f"duplicate key {key!r} (parsers disagree on which value wins)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Drop the implicit timestamp resolver (a copy, so yaml.SafeLoader itself is left alone).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes the document becomes once its aliases are expanded (memoised per node, so
    this costs the size of the node graph, not of the expansion)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a cycle (a recursive alias) counts once; SafeLoader builds it as a cycle
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(n, memo) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = size
    return size


def _duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} (parsers disagree on which value wins)")
        out[key] = value
    return out


def _json_document(text: str) -> list[Any] | None:
    """The file as one JSON document, or None when it is not JSON (then it is read as YAML)."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return [json.loads(text, object_pairs_hook=_duplicate_json_keys)]
    except json.JSONDecodeError:
        return None  # not JSON after all (a YAML flow mapping, say): YAML decides


def _yaml_documents(text: str, name: str) -> list[Any]:
    loader = _Loader(text)
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            n = len(docs) + 1
            if _expanded_size(node, {}) > MAX_NODES:
                raise ManifestInputError(
                    f"{name}: document {n} is too large: it expands to more than {MAX_NODES} nodes (an alias bomb?)",
                    hint="expand the YAML aliases of the file yourself, or split it")
            docs.append(loader.construct_document(node))
    finally:
        loader.dispose()
    return docs


def _yaml_error_text(exc: yaml.YAMLError) -> str:
    """`duplicate key 'kind' …, line 2, column 1` or `not valid YAML: …, line 3, column 7`."""
    problem = getattr(exc, "problem", None) or str(exc)
    what = "" if isinstance(exc, _RefusedYAML) else "not valid YAML: "
    mark = getattr(exc, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(exc, "context", None)
    return f"{what}{problem}{where}" + (f" ({context})" if context else "")


def read_documents(name: str, data: bytes) -> list[dict[str, Any]]:
    """Every non-empty document of one file (``name`` only names it in errors), each a mapping."""
    if len(data) > MAX_FILE_BYTES:
        raise ManifestInputError(f"{name}: the file is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestInputError(f"{name}: not UTF-8 text ({exc})") from exc
    try:
        docs = _json_document(text)
        if docs is None:
            docs = _yaml_documents(text, name)
    except ValueError as exc:  # duplicate JSON key
        raise ManifestInputError(f"{name}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ManifestInputError(f"{name}: {_yaml_error_text(exc)}") from exc
    out: list[dict[str, Any]] = []
    for n, doc in enumerate(docs, 1):
        if doc is None:  # an empty document (`---` twice, a trailing `---`): kubectl skips it too
            continue
        if not isinstance(doc, dict):
            raise ManifestInputError(
                f"{name}: document {n} is not a mapping (a Kubernetes object) but a {type(doc).__name__}",
                hint="every document of a manifest file must be one object with apiVersion and kind")
        _check_json(doc, f"{name}: document {n}")
        out.append(doc)
    return out


def _check_json(doc: dict[str, Any], where: str) -> None:
    """Refuse values JSON cannot carry unchanged (binary, NaN, infinity, non-string keys)."""
    stack: list[Any] = [doc]
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        if isinstance(value, (dict, list)):
            if id(value) in seen:  # shared by aliases, or a cycle: checked once
                continue
            seen.add(id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ManifestInputError(f"{where}: the key {key!r} is not a string, which JSON cannot hold as written")
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ManifestInputError(f"{where}: the value {value!r} cannot be written as JSON")
        elif not (value is None or isinstance(value, (str, bool, int, float))):
            raise ManifestInputError(f"{where}: a {type(value).__name__} value cannot be written as JSON (e.g. !!binary)")


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    try:
        with Path(path).open("rb") as f:
            return f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ManifestInputError(f"{path}: cannot read it: {exc.strerror or exc}") from exc


def manifest_list(paths: Iterable[str]) -> dict[str, Any]:
    """One ``{"apiVersion": "v1", "kind": "List", "items": [...]}`` of every document of every
    file, in order (``-`` is standard input). Raises ManifestInputError; never returns an empty
    List (a gate given nothing must not pass)."""
    items: list[dict[str, Any]] = []
    names: list[str] = []
    for path in paths:
        name = "<stdin>" if path == "-" else path
        names.append(name)
        items.extend(read_documents(name, _read(path)))
    if not names:
        raise ManifestInputError("no files given", hint="stella rego input FILE... (or - for standard input)")
    if not items:
        raise ManifestInputError(f"{', '.join(names)}: no documents: there is nothing to judge",
                                 hint="a gate given no objects would pass; give the manifest files to check")
    return {"apiVersion": "v1", "kind": "List", "items": items}


def manifest_list_json(paths: Iterable[str]) -> str:
    """:func:`manifest_list` as JSON text (a cycle from a recursive alias is refused)."""
    doc = manifest_list(paths)
    try:
        return json.dumps(doc, allow_nan=False)
    except (ValueError, RecursionError) as exc:
        raise ManifestInputError(f"the input cannot be written as JSON: {exc}",
                                 hint="a YAML alias that contains itself cannot become JSON") from exc
