"""ImageNet from parquet row groups, with the real huggingface_hub client against the mirror."""

import polars as pl
import pyarrow.parquet as pq

from encord_assets.materialize import Materializer
from encord_assets.mirror import hf_hub, imagenet
from encord_assets_tests.sources.hf_setup import SAVE_FOLDER, manifest, serve, sha256, write_infos

ASSET, KEY = "image_imagenet", "000|e-mm1_1m"


def imagenet_ids(count: int) -> list[str]:
    return [f"n{1_440_764 + n % 7:08d}_{n}" for n in range(count)]


def build(decoys: int, files: int):
    def build_repo(rows: pl.DataFrame, content):
        imagenet.build(rows.filter(pl.col("source") == ASSET), content, decoys=decoys, files=files, row_group_size=25)

    return build_repo


def parquet_budget(repo, needed: set[str]) -> tuple[int, int]:
    """(bytes of the row groups holding `needed`, bytes of every footer and image.path chunk)."""
    row_groups = overhead = 0
    for path in sorted((repo / "data").glob("train-*.parquet")):
        meta = pq.read_metadata(path)
        overhead += meta.serialized_size + 8
        names = pq.read_table(path, columns=["image"]).column("image").combine_chunks().field("path").to_pylist()
        first = 0
        for group in range(meta.num_row_groups):
            columns = [meta.row_group(group).column(c) for c in range(meta.num_columns)]
            overhead += sum(c.total_compressed_size for c in columns if c.path_in_schema == "image.path")
            rows = meta.row_group(group).num_rows
            if needed & {name.removesuffix(".JPEG") for name in names[first : first + rows]}:
                row_groups += sum(c.total_compressed_size for c in columns)
            first += rows
    return row_groups, overhead


def test_one_percent_reads_only_its_row_groups_and_places_the_original_bytes(tmp_path, monkeypatch, instance, root):
    needed = imagenet_ids(1000)[::100]
    write_infos(tmp_path / "infos", "image", "ImageNet", needed, ".JPEG")
    mirror = serve(tmp_path, monkeypatch, build(decoys=990, files=4))
    materializer = Materializer(instance)
    materializer.run("infos_image", "e-mm1_1m", raise_on_error=True)

    mirror.reset_stats()
    materializer.run("index_imagenet", raise_on_error=True)
    materializer.run(ASSET, KEY, raise_on_error=True)
    fetched = mirror.stats()["bytes_sent"]

    row_groups, overhead = parquet_budget(hf_hub.repo_dir(tmp_path / "mirror", imagenet.REPO), set(needed))
    assert fetched < 1.2 * (row_groups + overhead), (fetched, row_groups, overhead)
    result = manifest(root, ASSET, KEY)
    assert result["outcome"].to_list() == ["placed"] * len(needed)
    for file_id in needed:
        placed = (root / SAVE_FOLDER / "image" / f"{file_id}.JPEG").read_bytes()
        assert sha256(placed) == sha256(imagenet.imagenet_image(file_id))

    mirror.reset_stats()
    materializer.run("index_imagenet", raise_on_error=True)  # same pinned revision: reused, no request
    materializer.run(ASSET, KEY, raise_on_error=True)
    assert mirror.stats()["bytes_sent"] == 0
    assert manifest(root, ASSET, KEY)["outcome"].unique().to_list() == ["already_present"]


def test_a_corrupt_row_group_fails_its_rows_and_places_nothing_of_them(tmp_path, monkeypatch, instance, root):
    ids = imagenet_ids(200)
    needed = [ids[3], ids[150]]
    write_infos(tmp_path / "infos", "image", "ImageNet", [*needed, "n01440764_999999"], ".JPEG")

    def corrupt_first_row_group(content):
        path = hf_hub.repo_dir(content, imagenet.REPO) / "data" / "train-00000-of-00001.parquet"
        names = pq.read_table(path, columns=["image"]).column("image").combine_chunks().field("path").to_pylist()
        group = names.index(f"{needed[0]}.JPEG") // 25
        chunk = pq.read_metadata(path).row_group(group).column(0)  # image.bytes
        with open(path, "r+b") as f:
            f.seek(chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset)
            f.write(b"\xff" * chunk.total_compressed_size)

    serve(
        tmp_path,
        monkeypatch,
        lambda rows, content: imagenet.build(
            rows.filter(pl.col("source") == ASSET).head(2), content, decoys=198, files=1, row_group_size=25
        ),
        corrupt_first_row_group,
    )
    materializer = Materializer(instance)
    materializer.run("infos_image", "e-mm1_1m", raise_on_error=True)
    materializer.run("index_imagenet", raise_on_error=True)
    result = materializer.run(ASSET, KEY)

    assert not result.success
    outcomes = {row["target"].split("/")[-1]: row for row in manifest(root, ASSET, KEY).iter_rows(named=True)}
    assert outcomes[f"{needed[0]}.JPEG"]["outcome"] == "failed" and outcomes[f"{needed[0]}.JPEG"]["error_message"]
    assert outcomes[f"{needed[1]}.JPEG"]["outcome"] == "placed"
    assert outcomes["n01440764_999999.JPEG"]["outcome"] == "unavailable"
    assert outcomes["n01440764_999999.JPEG"]["error_class"] == "not_in_repo"
    assert not (root / SAVE_FOLDER / "image" / f"{needed[0]}.JPEG").exists()
