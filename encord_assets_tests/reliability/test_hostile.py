"""Promise 4: hostile upstreams (lying Content-Length, redirect loops, endless bodies, zip members that
escape or are links, a central directory that claims sizes beyond the file) are refused or bounded,
each with a clear error in the manifest, and never write outside ROOT."""

from pathlib import Path

import polars as pl

from encord_assets.demo import normalized_rows
from encord_assets.materialize import Materializer
from encord_assets.mirror import coco as coco_mirror
from encord_assets.mirror.hostile import escaping_zip
from encord_assets.sources.coco import coco_member
from encord_assets_tests.conftest import IMAGE_HEADER, start_mirror, write_infos
from encord_assets_tests.reliability.support import manifest


def outcomes_of(materializer, root, rows: pl.DataFrame) -> dict[str, tuple[str, str, str]]:
    """file_id -> (outcome, error_class, error_message) after running every partition of `rows` once."""
    found = {}
    for key in sorted(set(rows["partition_key"])):
        materializer.run("image_coco", key)
        found |= {r["target"]: r for r in manifest(root, "image_coco", key).iter_rows(named=True)}
    return {file_id: (found[t]["outcome"], found[t]["error_class"], found[t]["error_message"]) for file_id, t in rows.select("file_id", "target").iter_rows()}


def test_hostile_upstreams_are_refused_or_bounded(tmp_path, custom_infos, monkeypatch, instance, root):
    write_infos(custom_infos, "e-mm1_1m", "image", [IMAGE_HEADER] + [f"{i},COCO,x,{i},{i}.jpg,e-mm1_1m_only" for i in range(41, 46)])
    write_infos(custom_infos, "e-mm1_100m", "image", [IMAGE_HEADER] + [f"{i},COCO,x,{i},{i}.jpg,e-mm1_100m_only" for i in range(51, 54)])
    rows = normalized_rows(custom_infos)
    content = tmp_path / "mirror"
    mirror = start_mirror(rows, content, monkeypatch)
    monkeypatch.setenv("COCO_ATTEMPTS", "2")
    monkeypatch.setenv("COCO_BACKOFF_SECONDS", "0.05")
    escaping_zip(
        content / "coco" / "zips" / "train2017.zip",
        {coco_member("51", "train2017"): coco_mirror.coco_image("51")},
        link=coco_member("52", "train2017"),
        oversized=coco_member("53", "train2017"),
    )
    try:
        # single GETs from a server that lies
        monkeypatch.setenv("COCO_METHOD", "images")
        materializer = Materializer(instance)
        materializer.infos("image")
        answers = {41: "short_length", 42: "long_length", 43: "redirect_loop", 44: "endless"}
        mirror.answer({f"/coco/{coco_member(str(i), 'train2017')}": kind for i, kind in answers.items()})
        singles = outcomes_of(materializer, root, rows.filter(pl.col("split") == "e-mm1_1m"))
        endless_bytes = mirror.stats()["by_prefix"]["/coco"]["bytes"]

        # ranged reads of a hostile zip
        monkeypatch.setenv("COCO_METHOD", "ranges")
        zipped = outcomes_of(Materializer(instance), root, rows.filter(pl.col("split") == "e-mm1_100m"))
    finally:
        mirror.stop()

    short, long, loop, endless, good = (singles[str(i)] for i in range(41, 46))
    assert short[:2] == ("failed", "IncompleteImage") and "did not send a whole image" in short[2]
    assert long[0] == "failed" and ("IncompleteRead" in long[2] or "Connection broken" in long[2]), long
    assert loop[:2] == ("unavailable", "redirect_loop")
    assert endless[:2] == ("unavailable", "too_large") and "sent more than" in endless[2]
    assert endless_bytes < 2 * (64 << 20)  # bounded by the image size limit
    assert good[0] == "placed"

    assert zipped["51"][0] == "placed"
    assert zipped["52"][:2] == ("unavailable", "refused_member") and "symbolic link" in zipped["52"][2]
    assert zipped["53"][:2] == ("unavailable", "refused_member") and "beyond the" in zipped["53"][2]

    placed = {p.relative_to(root).as_posix() for p in root.rglob("*.jpg")}
    assert placed == {"e-mm1_1m_only/image/45.jpg", "e-mm1_100m_only/image/51.jpg"}
    assert (root / "e-mm1_1m_only/image/45.jpg").read_bytes() == coco_mirror.coco_image("45")
    assert not [p for p in tmp_path.rglob("*") if p.name in ("escaped.jpg", "up.jpg")]
    assert not Path("/tmp/encord-assets-absolute-member.jpg").exists()
    print(f"\nhostile: {len(answers)} lying HTTP answers and 5 hostile zip members, all refused or bounded; endless body cut at {endless_bytes} bytes")
