"""Property-based: generated infos CSV bytes through `normalize` and the infos asset.

Whatever the bytes, normalize does not crash; every data row ends either normalized or rejected
with its row number, column and reason (a file that cannot be read is one row-less reject);
normalized rows have finite times with 0 <= start < end and a target inside ROOT; the same bytes
give the same result. Examples are derived from a fixed seed and bounded in number, so the run
is the same everywhere; what hypothesis found is kept in CORPUS and checked as regular tests.
"""

import math
import tempfile
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from hypothesis import currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from encord_assets.infos.assets import INFOS_ASSETS, describe_reject, rejects_key
from encord_assets.infos.files import InfosDir
from encord_assets.infos.normalize import REQUIRED_COLUMNS, normalize
from encord_assets.layout.paths import layout_key
from encord_assets.layout.tables import TableIOManager
from encord_assets.settings import DEFAULT_MAX_CLIP_SECONDS
from encord_assets.store import DatasetStore
from encord_assets_tests.fuzz import FUZZ

HEADERS = {
    "video": ("encord_video_id", *REQUIRED_COLUMNS["video"], "youtube_id", "start_time", "end_time", "file_id"),
    "audio": ("encord_audio_id", *REQUIRED_COLUMNS["audio"]),
    "image": ("encord_image_id", *REQUIRED_COLUMNS["image"]),
    "text": ("encord_text_id", *REQUIRED_COLUMNS["text"]),
}

# Values that are valid somewhere, next to the ones that broke or could break parsers and rules.
NUMBERS = st.sampled_from(
    ["0", "1", "2.5", "-0", "-1", "inf", "-inf", "nan", "NaN", "Infinity", "1e308", "1e400", "-1e400", "1e-320",
     "3e3", " 4 ", "5,5", "0x10", "1_000", "99999999999999999999", "7200"]
) | st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.integers(-(2**70), 2**70).map(str)
NAMES = st.sampled_from(
    ["a.jpg", "clip.mp4", "ünïcödé.jpg", "日本語.mp4", " spaced .jpg", "..", ".", "../x.jpg", "/abs.jpg", "C:\\x.jpg",
     "C:x.jpg", "a/b.jpg", "a\\b.jpg", "nul\x00.jpg", "ctl\x01.jpg", "tab\tname.jpg", "x" * 300, "_encord_assets", ""]
) | st.text(min_size=0, max_size=12)
WORDS = st.sampled_from(
    ["Valor", "valor", " AudioSet ", "COCO", "mscoco", "ImageNet", "Flickr30k", "Google Conceptual Captions",
     "VidGen-1M", "shared", "e-mm1_1m_only", "eshot", "phase_1_only", "abcdefghijk", "391895", "n01440764_10026",
     "http://127.0.0.1/x.jpg", "https://example.com/a.jpg", "file:///etc/passwd", "", " ", "Nope"]
)
CELL_TEXT = NUMBERS | NAMES | WORDS
# raw bytes spliced into a cell: invalid UTF-8, quotes and separators the writer must quote
RAW_BYTES = st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b'"', b",", b"\n", b"\r\n", b"\x00", b"\xef\xbb\xbf"])


def quoted(draw, value: bytes) -> bytes:
    if draw(st.booleans()) or any(c in value for c in b'",\r\n'):
        return b'"' + value.replace(b'"', b'""') + b'"'
    return value


@st.composite
def hostile(draw) -> bytes:
    value = draw(CELL_TEXT).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 4)) == 0:
        value += draw(RAW_BYTES)
    return value


YOUTUBE_ID = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=11, max_size=11)
SAVE_FOLDERS = st.sampled_from(["shared", "e-mm1_1m_only", "e-mm1_100m_only", "phase_1_only"])


@st.composite
def valid_row(draw, modality: str, index: int) -> dict[str, bytes]:
    """A row that passes every rule, to mutate: mostly-valid files reach the deeper rules."""
    row = {HEADERS[modality][0]: str(index + 1)}
    if modality == "text":
        row["caption"] = draw(st.text(min_size=1, max_size=20).filter(str.strip))
    elif modality == "image":
        row |= {"source_dataset": "COCO", "file_id": str(draw(st.integers(1, 10**6))), "file_name": f"{index}.jpg"}
    else:
        start = draw(st.floats(0, 100, allow_nan=False))
        row |= {
            "source_dataset": draw(st.sampled_from(["Valor", "InternVid"] if modality == "video" else ["AudioSet", "VGGSound"])),
            "youtube_id": draw(YOUTUBE_ID),
            "start_time": repr(start),
            "end_time": repr(start + draw(st.floats(0.5, 30))),
            "file_name": f"{index}.mp4",
        }
    if modality != "text":
        row["save_folder"] = draw(SAVE_FOLDERS)
    return {column: value.encode() for column, value in row.items()}


@st.composite
def infos_csv(draw) -> tuple[str, bytes, int]:
    """(modality, file bytes, number of data rows the file holds)."""
    modality = draw(st.sampled_from(sorted(HEADERS)))
    columns = list(HEADERS[modality])
    columns += draw(st.lists(st.sampled_from(["dataset_license", "extra", "Ünïcode col", " spaced "]), max_size=2, unique=True))
    if draw(st.integers(0, 19)) == 0:
        columns.remove(draw(st.sampled_from(columns)))  # a file missing a column is one reject
    columns = draw(st.permutations(columns))
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    rows = []
    for index in range(draw(st.integers(0, 10))):
        values = draw(valid_row(modality, index))
        cells = [values.get(column, b"x") for column in columns]
        for position in draw(st.lists(st.integers(0, len(cells) - 1), max_size=3)):
            cells[position] = draw(hostile())
        if draw(st.integers(0, 6)) == 0:  # ragged: a cell short or cells too many
            cells = cells[:-1] if draw(st.booleans()) else cells + [b"x", b"y"]
        rows.append(b",".join(quoted(draw, c) for c in cells))
    bom = b"\xef\xbb\xbf" if draw(st.integers(0, 4)) == 0 else b""
    header = b",".join(c.encode() for c in columns)
    return modality, bom + newline.join([header, *rows]) + (newline if draw(st.booleans()) else b""), len(rows)


def tally(kind: str) -> None:
    """Count what the examples exercised (`pytest --hypothesis-show-statistics` shows it)."""
    if currently_in_test_context():
        event(kind)


def check_result(result, modality: str, row_count: int, root: Path) -> None:
    rejects = result.rejects
    file_level = rejects.filter(pl.col("infos_row").is_null())
    if file_level.height:
        tally(f"file-level reject: {file_level['reason'][0][:40]}")
        assert rejects.height == 1 and result.rows.collect().height == 0
        assert "None" not in describe_reject(file_level.row(0, named=True))
        return
    rows = result.rows.collect()
    tally(f"{modality}: some rows normalized" if rows.height else f"{modality}: no row normalized")
    tally(f"{modality}: {rejects.height} rejects" if rejects.height < 3 else f"{modality}: 3+ rejects")
    assert rejects["column"].null_count() == 0 and rejects["reason"].null_count() == 0
    numbers = sorted(rows["infos_row"].to_list() + rejects["infos_row"].to_list())
    assert numbers == list(range(1, row_count + 1)), "every data row ends normalized or rejected, once"
    if modality == "text":
        return
    for target in rows["target"]:
        assert (root / layout_key(target)).resolve().is_relative_to(root.resolve())
    if modality in ("video", "audio"):
        timed = rows.filter(pl.col("source") != "video_vidgen1m")
        for start, end in timed.select("start_time", "end_time").iter_rows():
            assert math.isfinite(start) and math.isfinite(end)
            assert 0 <= start < end and end - start <= DEFAULT_MAX_CLIP_SECONDS


VIDEO_HEADER = b"encord_video_id,source_dataset,dataset_license,youtube_id,start_time,end_time,file_id,file_name,save_folder"
# (modality, file bytes, data rows): the shrunk examples hypothesis found, each once a bug
CORPUS = [
    # inf passed every comparison, and the mirror builder died on it (OverflowError)
    ("video", VIDEO_HEADER + b"\n1,Valor,x,AAAAAAAAAAA,0.0,inf,,0.mp4,shared\n", 1),
    # finite but absurd: a clip range of 1e308 seconds
    ("video", VIDEO_HEADER + b"\n1,Valor,x,AAAAAAAAAAA,0.0,1e+308,,0.mp4,shared\n", 1),
    # nan compares false everywhere, so neither "negative" nor "not greater than start_time" fired
    ("audio", b"encord_audio_id,source_dataset,youtube_id,start_time,end_time,file_name,save_folder\r\n"
     b'1,AudioSet,AAAAAAAAAAA,nan,"2",0.mp4,shared\r\n', 1),
]


def check_bytes(modality: str, content: bytes, row_count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{modality}.csv"
        path.write_bytes(content)
        split = "e-mm1_1m"
        first = normalize(path, path.name, split, modality)
        check_result(first, modality, row_count, Path(folder) / "root")
        second = normalize(path, path.name, split, modality)
        assert first.rows.collect().equals(second.rows.collect())
        assert first.rejects.equals(second.rejects)


@pytest.mark.parametrize(("modality", "content", "row_count"), CORPUS)
def test_corpus(modality, content, row_count):
    check_bytes(modality, content, row_count)


@settings(FUZZ, max_examples=120)
@given(infos_csv())
def test_normalize_never_crashes_and_accounts_for_every_row(generated):
    check_bytes(*generated)


@settings(FUZZ, max_examples=8)
@given(infos_csv())
def test_the_infos_asset_writes_every_row_inside_root(generated):
    """The whole asset in process (IO manager included) on fewer examples: a run costs ~0.5 s."""
    modality, content, row_count = generated
    with tempfile.TemporaryDirectory() as folder:
        infos_dir, root = Path(folder) / "infos", Path(folder) / "root"
        path = infos_dir / "e-mm1_1m" / "infos" / f"{modality}.csv"
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        store = DatasetStore(root=str(root))
        (asset,) = [a for a in INFOS_ASSETS if a.key.path[-1] == f"infos_{modality}"]
        result = dg.materialize(
            [asset],
            partition_key="e-mm1_1m",
            resources={"infos_dir": InfosDir(path=str(infos_dir)), "store": store, "table_io_manager": TableIOManager(store=store)},
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert result.success
        rejects = store.read_csv(rejects_key(modality, "e-mm1_1m"))
        written = [p for p in Path(folder).rglob("*") if p.is_file()]
        assert all(p.is_relative_to(root) or p == path for p in written)
        if rejects["infos_row"].null_count():
            return
        table = pl.read_parquet(next((root / "_encord_assets" / "tables" / f"infos_{modality}").glob("*.parquet")))
        numbers = sorted(table["infos_row"].to_list() + [int(n) for n in rejects["infos_row"]])
        assert numbers == list(range(1, row_count + 1))
