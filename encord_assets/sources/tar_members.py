"""Read a tar.gz stream once and stage the members that are needed, stopping once all are found.

Nothing but the needed members reaches the disk: the archive is read as it arrives
(`tarfile` stream mode over the HTTP response), so there is no copy of it anywhere.
Members that are links or devices, or whose names could escape (`../`, absolute), are
refused whatever they are called; staged files get names of our own, never the member's.
"""

import shutil
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Callable

from encord_assets.ledger import FetchLedger
from encord_assets.sources.archive_names import member_name_problem


@dataclass
class TarPass:
    seen: list[str]  # keys of the regular members read, in archive order
    complete: bool  # the pass read the archive to its end (so `seen` lists all its members)


def stage_members(
    stream: BinaryIO,
    wanted: dict[str, list[str]],
    log: FetchLedger,
    key_of: Callable[[str], str | None],
    max_member_bytes: int,
) -> TarPass:
    """Stage each member whose `key_of(name)` is in `wanted` (key -> targets) for its targets;
    found keys are removed from `wanted`. Stops reading when `wanted` is empty."""
    seen: list[str] = []
    with tarfile.open(fileobj=stream, mode="r|gz") as archive:
        while wanted:
            member = archive.next()
            if member is None:
                return TarPass(seen, True)
            archive.members.clear()  # stream mode would otherwise keep every header in memory
            if not member.isreg():
                if member.issym() or member.islnk() or member.isdev():
                    log.note("refused_link_or_device_members")
                continue
            if member_name_problem(member.name):
                log.note("refused_unsafe_members")
                continue
            key = key_of(member.name)
            if key is None:
                continue
            seen.append(key)
            targets = wanted.pop(key, None)
            if targets is None:
                continue
            if member.size > max_member_bytes:
                for target in targets:
                    log.unavailable(target, "too_large", f"{member.name} is {member.size} bytes, over the {max_member_bytes}-byte limit")
                continue
            path = log.staging_path()
            try:
                with archive.extractfile(member) as source, open(path, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
            except BaseException:
                path.unlink(missing_ok=True)  # a stream cut mid-member leaves no partial file behind
                raise
            log.staged_all(targets, path, member.size)
    return TarPass(seen, False)
