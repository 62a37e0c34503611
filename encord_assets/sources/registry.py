"""The one list of sources: which (modality, source dataset) pairs we fetch, and how.

Each entry becomes one partitioned asset (see factory.py). `fetcher` names the fetch
strategy: the module `sources/<fetcher>.py` (its `RESOURCE` is the resource that fetches the
rows, configured from the settings of that key) and the module `mirror/<fetcher>.py` that
emulates its upstream. `pool` is the Dagster pool its runs take a slot of. `shards` is fixed
forever for a source because changing it would move rows between partitions.
"""

import importlib
import re
from dataclasses import dataclass

from encord_assets.infos.datasets import DATASETS
from encord_assets.infos.files import splits_for


@dataclass(frozen=True)
class OwnPartitions:
    """Partitions a source declares itself (one per upstream archive, say) instead of
    `<shard>|<split>`: one run serves the rows of every split that live in its partition."""

    keys: tuple[str, ...]
    # the partition of every row of the source when the infos tell it; None when the
    # fetcher locates rows at run time (its `rows_to_fetch` and `rows_located`)
    row_key: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    modality: str
    dataset: str
    fetcher: str
    shards: int
    pool: str
    # column that locates a row upstream; rows without it have no upstream here
    locator: str = "file_id"
    # which splits hold its rows: E-MM1's (100M, 1M) and/or EShot's
    e_mm1: bool = True
    eshot: bool = False
    # an index asset (built by the fetcher's `build_index`) this source's asset takes as input `index`
    index: str | None = None
    partitions: OwnPartitions | None = None
    # False: rows come from the source's own upstream tables, not from E-MM1 infos; then
    # `sources/<fetcher>_assets.py` builds the source's asset (`build_asset(spec)`), its partitions
    # and the assets of those tables
    from_infos: bool = True
    # hash and decode-test staged files while the partition is still fetching (operations/verified.py);
    # False where a fetcher stages everything at its end, so verifying there would only add time
    verify_staged: bool = True

    @property
    def locates_rows(self) -> bool:
        return self.partitions is not None and self.partitions.row_key is None

    @property
    def name(self) -> str:
        return f"{self.modality}_{re.sub(r'[^a-z0-9]+', '', self.dataset.lower())}"

    @property
    def splits(self) -> tuple[str, ...]:
        splits = splits_for(self.modality)
        return tuple(s for s in splits if (self.eshot if s == "eshot" else self.e_mm1))

    def __post_init__(self):
        assert self.dataset in DATASETS or not self.from_infos, self.dataset
        assert self.pool in POOL_LIMITS, self.pool


# Concurrent partition runs per upstream family: YouTube throttles hard, the Hub less so;
# img2dataset runs several processes per partition and reaches many hosts at once.
POOL_LIMITS = {"youtube": 2, "huggingface": 4, "http": 4, "url_images": 2}


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("image", "COCO", fetcher="coco", shards=16, pool="http"),
    # YouTube clips: shards sized for the real infos (benchmarks/partition_sizing.py): about 1,000
    # clips or fewer per partition, an hour at ~1,000 clips per hour per IP. InternVid (2048 ->
    # 4096), VideoRefer (512 -> 1024) and AudioSet (1024 -> 3072) were re-sized: `encord-assets reshard`.
    SourceSpec("video", "InternVid", fetcher="youtube", shards=4096, pool="youtube", locator="youtube_id"),
    SourceSpec("video", "Valor", fetcher="youtube", shards=1024, pool="youtube", locator="youtube_id"),
    SourceSpec("video", "VideoRefer", fetcher="youtube", shards=1024, pool="youtube", locator="youtube_id"),
    SourceSpec("audio", "AudioSet", fetcher="youtube", shards=3072, pool="youtube", locator="youtube_id"),
    SourceSpec("audio", "VGGSound", fetcher="youtube", shards=256, pool="youtube", locator="youtube_id"),
    SourceSpec("audio", "WavCaps", fetcher="youtube", shards=128, pool="youtube", locator="youtube_id"),
    SourceSpec("audio", "AudioCaps", fetcher="youtube", shards=64, pool="youtube", locator="youtube_id"),
    SourceSpec("audio", "EShot", fetcher="youtube", shards=8, pool="youtube", locator="youtube_id", e_mm1=False, eshot=True),
    # Hashed shards spread rows over every 100-image row group, so each extra ImageNet shard
    # would re-read nearly all of them: one partition per split reads each row group once
    # (~146 GB for all of ImageNet train, within an hour at 50 MB/s).
    SourceSpec("image", "ImageNet", fetcher="imagenet", shards=1, pool="huggingface", index="index_imagenet"),
    # 31,783 images, 4.4 GB: each partition reads the ~2.5 MB central directory, then its members.
    SourceSpec("image", "Flickr30k", fetcher="flickr30k", shards=4, pool="huggingface"),
    # ~1M clips, several TB: partitions of a few thousand clips (~10 GB) each.
    SourceSpec("video", "VidGen-1M", fetcher="vidgen", shards=256, pool="huggingface", index="index_vidgen"),
    SourceSpec("image", "Google Conceptual Captions", fetcher="url_images", shards=64, pool="url_images", verify_staged=False),
    *(
        SourceSpec("points", name, fetcher="openshape", shards=1, pool="huggingface", partitions=OwnPartitions((name,), name))
        for name in ("3D-FUTURE", "ABO", "ShapeNet")
    ),
    # EShot's point rows are Objaverse shapes; which of the 160 archives holds an id is
    # learnt by reading the archives (sources/archive_index.py)
    SourceSpec(
        "points", "Objaverse", fetcher="openshape", shards=1, pool="huggingface",
        partitions=OwnPartitions(tuple(f"000-{n:03d}" for n in range(160))),
    ),
    # Open Images V6 by class: rows from its annotation CSVs, partitions (class, split)
    SourceSpec("image", "Open Images V6", fetcher="openimages", shards=1, pool="http", from_infos=False),
)


def sources_for(modality: str) -> tuple[SourceSpec, ...]:
    return tuple(spec for spec in SOURCES if spec.modality == modality)


def source_by_name(name: str) -> SourceSpec:
    return next(spec for spec in SOURCES if spec.name == name)


def fetcher_keys() -> list[str]:
    return sorted({spec.fetcher for spec in SOURCES})


def fetcher_resource(fetcher: str) -> type:
    """The resource class of fetch strategy `fetcher` (imported on demand: fetchers import this module)."""
    return importlib.import_module(f"encord_assets.sources.{fetcher}").RESOURCE


def upstream_emulation(fetcher: str):
    """The mirror module that emulates `fetcher`'s upstream (build, env, routes)."""
    return importlib.import_module(f"encord_assets.mirror.{fetcher}")
