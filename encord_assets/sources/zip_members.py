"""Copy chosen members out of a remote zip, member by member, in archive order.

The zip object reads its central directory by Range requests (remotezip, or zipfile over
an HfFileSystem file); each member is then one ranged read. zipfile checks each member's
CRC, so a corrupt upstream never reaches the layout.
"""

import shutil
import stat
import zipfile
from typing import Callable

from encord_assets.ledger import FetchLedger
from encord_assets.sources.archive_names import member_name_problem
from encord_assets.sources.retry import RetryPolicy, record_error


def member_problem(info: zipfile.ZipInfo, archive_size: int, max_member_bytes: int) -> tuple[str, str] | None:
    """(note, reason) when a member must not be read; None for a plain file that fits the archive and the limit."""
    if problem := member_name_problem(info.filename):
        return "refused_unsafe_members", f"unsafe member name: {problem}"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "refused_unsafe_members", "the member is a symbolic link"
    if info.header_offset + info.compress_size > archive_size:
        return "refused_oversized_members", (
            f"the central directory claims {info.compress_size} bytes at offset {info.header_offset}, beyond the {archive_size}-byte archive"
        )
    if info.file_size > max_member_bytes:
        return "refused_oversized_members", f"the member claims {info.file_size} bytes, over the {max_member_bytes}-byte limit"
    return None


class Members(dict[str, zipfile.ZipInfo]):
    """Name -> ZipInfo of the members that are safe to read; `refused` says why each other one is not."""

    def __init__(self):
        super().__init__()
        self.refused: dict[str, str] = {}


def index_members(zf: zipfile.ZipFile, archive_size: int, log: FetchLedger, max_member_bytes: int) -> Members:
    """The members that are safe to read; refused ones are counted in the log."""
    members = Members()
    for info in zf.infolist():
        # judged before is_dir(), which fails on the empty name a NUL-led name becomes
        problem = member_problem(info, archive_size, max_member_bytes)
        if problem:
            log.note(problem[0])
            members.refused[info.filename] = problem[1]
        elif not info.is_dir():
            members[info.filename] = info
    return members


def wanted_members(members: Members, wanted: dict[str, list[str]], log: FetchLedger, archive: str) -> list[zipfile.ZipInfo]:
    """The wanted members (name -> targets) that can be read, in archive order; the targets of
    names not in `members`, or refused there, are recorded unavailable."""
    for name in wanted.keys() - members.keys():
        refusal = members.refused.get(name)
        for target in wanted[name]:
            if refusal is None:
                log.unavailable(target, "not_in_archive", f"{name} is not a member of {archive}")
            else:
                log.unavailable(target, "refused_member", f"{name} in {archive}: {refusal}")
    return sorted((members[name] for name in wanted if name in members), key=lambda info: info.header_offset)


def copy_members(
    zf: zipfile.ZipFile,
    members: Members,
    wanted: dict[str, list[str]],
    log: FetchLedger,
    retry: RetryPolicy,
    archive: str,
    before_member: Callable[[zipfile.ZipInfo], None] | None = None,
) -> None:
    """Stage each wanted member (name -> targets); names not in `members`, or refused there, are unavailable.
    `before_member(info)` runs before each member is read (to size the next ranged read)."""
    for info in wanted_members(members, wanted, log, archive):
        targets = wanted[info.filename]
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
            record_error(log, targets, error)
            continue
        log.staged_all(targets, path, info.file_size)


