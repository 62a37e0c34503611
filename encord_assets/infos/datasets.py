"""The source datasets E-MM1 credits, and the spellings its infos use for them."""

from __future__ import annotations

from encord_assets.lazy import pl

# canonical name -> modalities it appears in, accepted spellings (compared case-insensitively)
DATASETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "AudioCaps": (("audio",), ("AudioCaps", "audio_caps")),
    "AudioSet": (("audio",), ("AudioSet", "Audio Set", "audioset_sl")),
    "VGGSound": (("audio",), ("VGGSound", "VGG-Sound", "vggsound")),
    "WavCaps": (("audio",), ("WavCaps", "wav_caps")),
    "EShot": (("audio",), ("EShot", "E-Shot")),
    "COCO": (("image",), ("COCO", "MSCOCO", "MS-COCO", "COCO2017")),
    "Flickr30k": (("image",), ("Flickr30k", "Flickr30K", "flickr-30k", "flickr_30k")),
    "Google Conceptual Captions": (
        ("image",),
        ("Google Conceptual Captions", "Conceptual Captions", "GCC", "CC3M"),
    ),
    "ImageNet": (("image",), ("ImageNet", "ImageNet-1k", "ILSVRC", "imagenet1k")),
    "InternVid": (("video",), ("InternVid", "InternVid-10M")),
    "VidGen-1M": (("video",), ("VidGen-1M", "VidGen", "VIDGEN-1M", "vidgen1m")),
    "Valor": (("video",), ("Valor", "VALOR", "VALOR-1M", "valor32k")),
    "VideoRefer": (("video",), ("VideoRefer", "VideoRefer-700K")),
    "3D-FUTURE": (("points",), ("3D-FUTURE", "3D-Future", "3DFuture", "3d_future")),
    "ABO": (("points",), ("ABO", "Amazon Berkeley Objects")),
    "ShapeNet": (("points",), ("ShapeNet", "ShapeNetCore")),
    "Objaverse": (("points",), ("Objaverse",)),
}

# Rows of these datasets come from YouTube when they carry a youtube_id.
NOT_YOUTUBE = {"VidGen-1M"}


def canonical_names(modality: str) -> dict[str, str]:
    """lower-cased spelling -> canonical name, for one modality."""
    return {
        alias.lower(): name
        for name, (modalities, aliases) in DATASETS.items()
        if modality in modalities
        for alias in aliases
    }


def lookup(column: pl.Expr, mapping: dict, default=None) -> pl.Expr:
    """`mapping[value]` for each value of a string `column`, else `default`.

    The column cast to an Enum of the keys (null where no key matches) picks the value at that
    position: one hash lookup a row, and streamed, where `replace_strict` would hold the whole
    column (on a gigabyte infos file, the whole file) in memory.
    """
    if not mapping:
        return pl.lit(default)
    position = column.cast(pl.Enum(list(mapping)), strict=False).to_physical()
    picked = pl.lit(pl.Series(list(mapping.values()))).gather(position)
    return picked if default is None else picked.fill_null(pl.lit(default))


def canonical_expr(lowered: pl.Expr, modality: str) -> pl.Expr:
    """The canonical dataset name of a source_dataset column stripped and lower-cased (null when
    unknown). Give it a column computed beforehand: the lookup reads its input once per name."""
    return lookup(lowered, canonical_names(modality)).cast(pl.String)

# What a valid file_id looks like, where the upstream fixes it.
FILE_ID_PATTERNS = {
    "COCO": (r"^\d{1,12}$", "a COCO numeric image id"),
    "ImageNet": (r"^n\d{8}_\d+$", "an ImageNet id such as n01440764_10026"),
    "Flickr30k": (r"^\d+$", "a Flickr30k numeric id"),
    "Google Conceptual Captions": (r"^https?://[^\s]+$", "an http(s) image URL"),
}
YOUTUBE_ID_PATTERN = r"^[A-Za-z0-9_-]{11}$"
