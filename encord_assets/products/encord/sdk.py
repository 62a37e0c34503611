"""Our manifests against Encord's own SDK, offline: the documented keys, and the `encord.orm.storage` models.

The SDK's models drop unknown keys silently (pydantic `extra="ignore"`), so the keys are also checked
against the ones Encord documents for its JSON import. `encord` is an optional dependency
(`uv sync --extra encord`; the dev group has it too).
"""

import json
import re
from pathlib import Path

TOP_LEVEL_KEYS = {"videos", "audio", "images", "image_groups", "skip_duplicate_urls"}
ENTRY_KEYS = {
    "videos": {"objectUrl", "title", "clientMetadata", "videoMetadata"},
    "audio": {"objectUrl", "title", "clientMetadata", "audioMetadata"},
    "images": {"objectUrl", "title", "clientMetadata"},
    "image_groups": {"title", "createVideo", "clientMetadata"},
}
IMAGE_GROUP_URL = re.compile(r"objectUrl_(\d+)")
METADATA_TYPES = (bool, int, float, str)


def undocumented_keys(manifest: dict) -> list[str]:
    """Every key (or clientMetadata value) of `manifest` that Encord's JSON import does not document."""
    problems = [f"top-level key {key!r}" for key in manifest if key not in TOP_LEVEL_KEYS]
    for kind, allowed in ENTRY_KEYS.items():
        for n, entry in enumerate(manifest.get(kind, [])):
            for key in entry:
                if key not in allowed and not (kind == "image_groups" and IMAGE_GROUP_URL.fullmatch(key)):
                    problems.append(f"{kind}[{n}]: key {key!r}")
            for key, value in entry.get("clientMetadata", {}).items():
                if not isinstance(value, METADATA_TYPES):
                    problems.append(f"{kind}[{n}].clientMetadata[{key!r}]: {type(value).__name__} is no Encord metadata type")
    return problems


def upload_items_dict(manifest: dict) -> dict:
    """The JSON's shape as the SDK's `DataUploadItems` takes it: image groups' `objectUrl_N` become `images: [{url}]`."""
    converted = dict(manifest)
    groups = []
    for entry in manifest.get("image_groups", []):
        urls = sorted(((int(m.group(1)), v) for k, v in entry.items() if (m := IMAGE_GROUP_URL.fullmatch(k))))
        rest = {k: v for k, v in entry.items() if not IMAGE_GROUP_URL.fullmatch(k)}
        groups.append({**rest, "images": [{"url": url} for _, url in urls]})
    converted["image_groups"] = groups
    return converted


def validate(manifest: dict):
    """The manifest as `encord.orm.storage.DataUploadItems` (raises on an undocumented key or an invalid item)."""
    from encord.orm.storage import DataUploadItems

    problems = undocumented_keys(manifest)
    if problems:
        raise ValueError("keys Encord's import does not document: " + "; ".join(problems[:20]))
    return DataUploadItems.from_dict(upload_items_dict(manifest))


def validate_file(path: Path):
    return validate(json.loads(Path(path).read_text(encoding="utf-8")))
