"""Promise 3: bad infos rows and files, end to end through Dagster: each is rejected with its file, row
and reason (in the infos asset's metadata and ROOT/_encord_assets/rejects/), the good rows of the same
files are placed, and nothing is written outside ROOT."""

from pathlib import Path

import polars as pl

from encord_assets.demo import normalized_rows
from encord_assets.layout.paths import BOOKKEEPING_DIR
from encord_assets.materialize import Materializer
from encord_assets_tests.conftest import materialization_metadata, start_mirror
from encord_assets_tests.reliability.support import layout_files

IMAGE = b"encord_image_id,source_dataset,dataset_license,file_id,file_name,save_folder"
VIDEO = b"encord_video_id,source_dataset,dataset_license,youtube_id,start_time,end_time,file_id,file_name,save_folder"
ESHOT = b"eshot_audio_id,youtube_id,start_time,end_time,file_name,save_folder"

# (row, column, words of the reason); row 0 is a row-less (whole file) reject
IMAGE_CASES = [
    (b"10,COCO,x,10,../../../escape.jpg,e-mm1_1m_only", "file_name", "'/'"),
    (b"11,COCO,x,11,/tmp/encord-assets-absolute-escape.jpg,e-mm1_1m_only", "file_name", "'/'"),
    (b"12,COCO,x,12,..\\..\\win.jpg,e-mm1_1m_only", "file_name", "'\\'"),
    (b"13,COCO,x,13,nul\x00byte.jpg,e-mm1_1m_only", "file_name", "NUL"),
    (b"14,COCO,x,14," + b"n" * 300 + b".jpg,e-mm1_1m_only", "file_name", "longer than 255 bytes"),
    (b"15,COCO,x,15,,e-mm1_1m_only", "file_name", "empty"),
    (b"16,COCO,x,16,..,e-mm1_1m_only", "file_name", "'..'"),
    (b"17,COCO,x,17,.,e-mm1_1m_only", "file_name", "'.'"),
    (b"18,COCO,x,18,ctrl\x01.jpg,e-mm1_1m_only", "file_name", "control character"),
    (b"19,COCO,x,19,bad\xff\xfe.jpg,e-mm1_1m_only", "file_name", "not valid UTF-8"),
    (b"20,COCO,x,20,20.jpg,phase_3_only", "save_folder", "unknown save_folder"),
    (b"21,COCO,x,21,21.jpg,..", "save_folder", "'..'"),
    (b"22,COCO,x,22,22.jpg,/etc", "save_folder", "'/'"),
    (b"23,COCO,x,23,23.jpg,", "save_folder", "empty"),
    (b"24,COCO,x,24,24.jpg,_encord_assets", "save_folder", "unknown save_folder"),
    (b"abc,COCO,x,25,25.jpg,e-mm1_1m_only", "encord_image_id", "not an integer"),
    (b",COCO,x,26,26.jpg,e-mm1_1m_only", "encord_image_id", "empty"),
    (b"1.5,COCO,x,27,27.jpg,e-mm1_1m_only", "encord_image_id", "not an integer"),
    (b"1,COCO,x,28,28.jpg,e-mm1_1m_only", "encord_image_id", "duplicate id"),
    (b"29,NotADataset,x,29,29.jpg,e-mm1_1m_only", "source_dataset", "unknown source dataset"),
    (b"30,,x,30,30.jpg,e-mm1_1m_only", "source_dataset", "empty"),
    (b"31,COCO,x,not-a-number,31.jpg,e-mm1_1m_only", "file_id", "not"),
    (b"32,COCO,x,,32.jpg,e-mm1_1m_only", "file_id", "empty"),
    (b"33,COCO,x,33,sub/dir.jpg,e-mm1_1m_only", "file_name", "'/'"),
]
IMAGE_GOOD = [b"1,COCO,x,1,1.jpg,e-mm1_1m_only", b"2,COCO,x,2,2.jpg,shared", b"3,mscoco,x,3,3.jpg,e-mm1_1m_only"]
VIDEO_CASES = [
    (b"110,Valor,x,aaaaaaaaa10,5,5,,v10.mp4,e-mm1_1m_only", "end_time", "not greater than start_time"),
    (b"111,Valor,x,aaaaaaaaa11,6,2,,v11.mp4,e-mm1_1m_only", "end_time", "not greater than start_time"),
    (b"112,Valor,x,aaaaaaaaa12,-1,2,,v12.mp4,e-mm1_1m_only", "start_time", "negative"),
    (b"113,Valor,x,aaaaaaaaa13,abc,2,,v13.mp4,e-mm1_1m_only", "start_time", "not a number"),
    (b"114,Valor,x,aaaaaaaaa14,1,,,v14.mp4,e-mm1_1m_only", "end_time", "not a number"),
    (b"115,Valor,x,short,1,2,,v15.mp4,e-mm1_1m_only", "youtube_id", "11-character"),
    (b"116,Valor,x,,1,2,,v16.mp4,e-mm1_1m_only", "youtube_id", "empty"),
    (b"117,Valor,x,aaaaaaaaa17,1,2,,../v17.mp4,e-mm1_1m_only", "file_name", "'/'"),
]
VIDEO_GOOD = [b"100,Valor,x,aaaaaaaaa00,1,3,,v00.mp4,e-mm1_1m_only"]
ESHOT_CASES = [
    (b"2,aaaaaaaaa22,-2,-1,e22.mp4,eshot", "start_time", "negative"),
    (b"3,aaaaaaaaa23,2,1,e23.mp4,eshot", "end_time", "not greater than start_time"),
]
# whole files that cannot be read: (relative path, bytes, words of the reason)
FILE_CASES = [
    ("e-mm1_1m/infos/audio.csv", b"", "empty file"),
    ("e-mm1_1m/infos/points.csv", b"encord_points_id;source_dataset;dataset_license;file_id;file_name;save_folder\n1;ABO;x;B0;1.npy;shared\n", "comma-separated"),
    ("e-mm1_100m/infos/image.csv", IMAGE[: IMAGE.rindex(b",")] + b"\n1,COCO,x,1,1.jpg\n", "missing column(s) save_folder"),
    ("e-mm1_1m/infos/text.csv", b"encord_text_id,caption\n1,fine\n2,caf\xe9 latin-1\n", None),
]


def write(path, header: bytes, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join([header, *lines]) + b"\n")


def rejects_of(root, modality: str, split: str) -> pl.DataFrame:
    return pl.read_csv((root / BOOKKEEPING_DIR) / "rejects" / f"{modality}__{split}.csv", infer_schema=False)


def test_bad_infos_are_rejected_with_file_row_and_reason(custom_infos, tmp_path, monkeypatch, instance):
    sandbox = tmp_path / "sandbox"
    root = sandbox / "root"
    monkeypatch.setenv("ROOT_DATA_PATH", str(root))
    write(custom_infos / "e-mm1_1m" / "infos" / "image.csv", IMAGE, IMAGE_GOOD[:1] + [c[0] for c in IMAGE_CASES] + IMAGE_GOOD[1:])
    write(custom_infos / "e-mm1_1m" / "infos" / "video.csv", VIDEO, VIDEO_GOOD + [c[0] for c in VIDEO_CASES])
    write(custom_infos / "eshot" / "eshot_audio_info.csv", ESHOT, [b"1,aaaaaaaaa21,1,3,e21.mp4,eshot"] + [c[0] for c in ESHOT_CASES])
    for relative, content, _ in FILE_CASES:
        (custom_infos / relative).parent.mkdir(parents=True, exist_ok=True)
        (custom_infos / relative).write_bytes(content)
    good = normalized_rows(custom_infos)
    assert good.height == len(IMAGE_GOOD) + len(VIDEO_GOOD) + 1
    mirror = start_mirror(good, tmp_path / "mirror", monkeypatch)
    # built now: the mirror settings above are read when definitions are built
    materializer = Materializer(instance)
    try:
        checked = 0
        for modality, split, file, cases, first_bad in (
            ("image", "e-mm1_1m", "e-mm1_1m/infos/image.csv", IMAGE_CASES, 2),
            ("video", "e-mm1_1m", "e-mm1_1m/infos/video.csv", VIDEO_CASES, 2),
            ("audio", "eshot", "eshot/eshot_audio_info.csv", ESHOT_CASES, 2),
        ):
            result = materializer.run(f"infos_{modality}", split, raise_on_error=True)
            metadata = materialization_metadata(result, f"infos_{modality}")
            assert metadata["rejected"] == len(cases)
            shown = {(r.data["infos_file"], r.data["infos_row"], r.data["reason"]) for r in metadata["rejects"].records}
            rejects = rejects_of(root, modality, split).filter(pl.col("kind") == "rejected")
            assert rejects.height == len(cases)
            for row, (line, column, words) in enumerate(cases, start=first_bad):
                (found,) = rejects.filter(pl.col("infos_row") == str(row)).to_dicts()
                assert found["infos_file"] == file and found["column"] == column and words in found["reason"], (line, found)
                checked += 1
            assert {(file, row) for file, row, _ in shown} == {(file, row) for row in range(first_bad, first_bad + len(cases))}
        for relative, _, words in FILE_CASES:
            modality = relative.rsplit("/", 1)[1].removesuffix(".csv")
            split = relative.split("/", 1)[0]
            result = materializer.run(f"infos_{modality}", split, raise_on_error=True)
            rejects = rejects_of(root, modality, split)
            if words is None:  # a caption that is not UTF-8: its row, not the file
                (found,) = rejects.to_dicts()
                assert (found["infos_file"], found["infos_row"], found["column"]) == (relative, "2", "caption")
                assert "not valid UTF-8" in found["reason"]
            else:
                (found,) = rejects.to_dicts()
                assert found["infos_file"] == relative and found["infos_row"] is None and words in found["reason"], found
            checked += 1
        assert checked >= 30

        # the good rows of the same files are placed
        for row in good.select("source", "partition_key").unique().iter_rows():
            materializer.run(*row, raise_on_error=True)
    finally:
        mirror.stop()
    assert set(layout_files(root)) == set(good["target"])
    # nothing outside ROOT: the sandbox holds only ROOT, and no absolute path was written
    assert [p.name for p in sandbox.iterdir()] == ["root"]
    assert not any(p.name.startswith("encord-assets-absolute-escape") for p in Path("/tmp").iterdir())
    print(f"\n{checked} bad infos cases rejected with file, row and reason; {good.height} good rows placed")
