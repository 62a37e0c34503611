"""Copy chosen members out of a remote zip, member by member, in archive order.

The zip object reads its central directory by Range requests (remotezip, or zipfile over
an HfFileSystem file); each member is then one ranged read. zipfile checks each member's
CRC, so a corrupt upstream never reaches the layout.
"""

import shutil
import zipfile
from typing import Callable

from encord_assets.layout.outcomes import FetchLog
from encord_assets.sources.archive_names import member_name_problem
from encord_assets.sources.retry import RetryPolicy, record_error


def index_members(zf: zipfile.ZipFile, archive_size: int, log: FetchLog, max_member_bytes: int) -> dict[str, zipfile.ZipInfo]:
    """Name -> ZipInfo of the members that are safe to read; refused ones are counted in the log."""
    usable = {}
    for info in zf.infolist():
        if info.is_dir():
            continue
        if member_name_problem(info.filename):
            log.note("refused_unsafe_members")
            continue
        if info.header_offset + info.compress_size > archive_size or info.file_size > max_member_bytes:
            log.note("refused_oversized_members")
            continue
        usable[info.filename] = info
    return usable


def copy_members(
    zf: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    wanted: dict[str, list[str]],
    log: FetchLog,
    retry: RetryPolicy,
    archive: str,
    before_member: Callable[[zipfile.ZipInfo], None] | None = None,
) -> None:
    """Stage each wanted member (name -> targets); names not in `members` are unavailable.
    `before_member(info)` runs before each member is read (to size the next ranged read)."""
    found = sorted((members[name] for name in wanted if name in members), key=lambda info: info.header_offset)
    for name in wanted.keys() - members.keys():
        for target in wanted[name]:
            log.unavailable(target, "not_in_archive", f"{name} is not a member of {archive}")
    for info in found:
        first, *others = wanted[info.filename]
        path = log.staging_path()

        def copy_one() -> None:
            if before_member:
                before_member(info)
            with zf.open(info) as member, open(path, "wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)

        try:
            retry.call(copy_one)
        except Exception as error:  # noqa: BLE001 - every row gets an outcome
            path.unlink(missing_ok=True)
            for target in (first, *others):
                record_error(log, target, error)
            continue
        log.staged(first, path, info.file_size)
        for target in others:
            log.staged_copy(target, first)


