"""Stage chosen members of a remote zip whose central directory a library has parsed.

remotezip reads the central directory by Range requests (`remote_zip`: the end record, then
exactly the directory, every byte counted into the partition's ledger); members are refused
here when their names or sizes are unsafe, and the needed ones are then read by `ranged_reads`
(coalesced parallel ranges or one streaming read, every member's size and CRC checked), so a
corrupt upstream never reaches the layout.
"""

import stat
import zipfile
from pathlib import Path

import remotezip
import requests

from encord_assets.lazy import pl
from encord_assets.ledger import FetchLedger
from encord_assets.sources.archive_names import member_name_problem
from encord_assets.sources.http import HttpStatusError
from encord_assets.sources.ranged_reads import Choice, Member, RangedReads, Source, check_method, fetch_members, pick
from encord_assets.sources.retry import record_error


# remotezip's first read: the end record and a ZIP64 locator, unless the archive has a long comment
END_RECORD_BYTES = 256


class CountingFetcher(remotezip.RemoteFetcher):
    """remotezip's fetcher, counting bytes into the partition's log and keeping HTTP statuses."""

    log: FetchLedger | None = None
    timeout: float = 60.0

    def _request(self, kwargs):
        response = self._session.get(self._url, stream=True, timeout=self.timeout, **kwargs)
        self.log.fetched(int(response.headers.get("Content-Length", 0)))
        if response.status_code >= 400:
            response.close()
            raise HttpStatusError(response.status_code, self._url, response.headers)
        if "Content-Range" not in response.headers:
            response.close()
            raise remotezip.RangeNotSupported("the server does not support Range requests")
        return response.raw, response.headers["Content-Range"]


def remote_zip(
    url: str, session: requests.Session, log: FetchLedger, timeout: float, headers: dict[str, str] | None = None
) -> remotezip.RemoteZip:
    """The zip at `url`, its central directory read by two ranged GETs (the end record, then exactly
    the directory) over `session` (a warm connection), every byte counted into `log`."""
    fetcher = type("PartitionFetcher", (CountingFetcher,), {"log": log, "timeout": timeout})
    return remotezip.RemoteZip(
        url, initial_buffer_size=END_RECORD_BYTES, session=session, fetcher=fetcher, headers=dict(headers or {})
    )


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


def judged(infos, archive_size: int, log: FetchLedger, max_member_bytes: int) -> Members:
    """The members among `infos` that are safe to read; refused ones are counted in the log."""
    members = Members()
    for info in infos:
        # judged before is_dir(), which fails on the empty name a NUL-led name becomes
        problem = member_problem(info, archive_size, max_member_bytes)
        if problem:
            log.note(problem[0])
            members.refused[info.filename] = problem[1]
        elif not info.is_dir():
            members[info.filename] = info
    return members


def index_members(zf: zipfile.ZipFile, archive_size: int, log: FetchLedger, max_member_bytes: int) -> Members:
    """The members of `zf` that are safe to read."""
    return judged(zf.infolist(), archive_size, log, max_member_bytes)


def table_members(table: "pl.DataFrame", names, archive_size: int, log: FetchLedger, max_member_bytes: int) -> Members:
    """The members of a directory table (`zip_directory.SCHEMA`) named in `names` that are safe to
    read: a partition judges (and builds ZipInfos for) the members it needs, not the whole archive's."""

    def infos():
        for row in table.filter(pl.col("name").is_in(list(names))).iter_rows(named=True):
            info = zipfile.ZipInfo()
            info.filename = row["name"]  # as the archive spells it (ZipInfo("a\0b") would cut it at the NUL)
            info.header_offset, info.compress_size, info.file_size = row["header_offset"], row["compress_size"], row["file_size"]
            info.CRC, info.compress_type, info.external_attr = row["crc"], row["compress_type"], row["external_attr"]
            yield info

    return judged(infos(), archive_size, log, max_member_bytes)


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


def stage_members(
    source: Source,
    archive_size: int,
    members: Members,
    wanted: dict[str, list[str]],
    log: FetchLedger,
    options: RangedReads,
    archive: str,
    choice: Choice | None = None,
) -> Choice:
    """Stage each wanted member (name -> targets) by ranged reads of `source`; names not in `members`,
    or refused there, are unavailable. The method is `choice` when given, else `options.method`
    (`auto`: chosen from the measured round trip); it is recorded in the ledger with its reason."""
    check_method(options.method)
    needed = [Member.of(info) for info in wanted_members(members, wanted, log, archive)]
    if not needed:
        return choice or Choice("ranges", "no member is needed", {})
    pending = [t for member in needed for t in wanted[member.name]]
    source.counter.listener = log.fetched
    try:
        choice = choice or options.retry.call(lambda: pick(source, needed, archive_size, options))
    except Exception as error:  # noqa: BLE001 - the archive itself failed: every row says why
        record_error(log, pending, error)
        return Choice("ranges", f"{archive}: {error}", {})
    log.chose(archive, choice.method, choice.reason)

    def done(member: Member, result: Path | BaseException) -> None:
        if isinstance(result, BaseException):
            record_error(log, wanted[member.name], result)
        else:
            log.staged_all(wanted[member.name], result, member.file_size)

    fetch_members(source, needed, archive_size, log.staging_path, options, stream=choice.method == "stream", on_done=done)
    return choice
