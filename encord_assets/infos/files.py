"""Where the infos CSVs of each split live in a checkout of E-MM1's `datasets/` folder."""

from pathlib import Path

import dagster as dg

SPLITS = ("e-mm1_100m", "e-mm1_1m", "eshot")
MODALITIES = ("video", "audio", "image", "points", "text")
SAMPLE_INFOS_DIR = Path(__file__).parent / "sample"

# Older E-MM1 docs call the 100M and 1M split folders phase 1 and phase 2.
SPLIT_FOLDERS = {
    "e-mm1_100m": ("e-mm1_100m", "encord_phase_1_dataset"),
    "e-mm1_1m": ("e-mm1_1m", "encord_phase_2_dataset"),
}
ESHOT_FILES = {"audio": "eshot/eshot_audio_info.csv", "points": "eshot/eshot_points_info.csv"}


def splits_for(modality: str) -> tuple[str, ...]:
    return SPLITS if modality in ESHOT_FILES else SPLITS[:2]


def infos_file(infos_dir: Path, split: str, modality: str) -> Path | None:
    """The infos CSV of (split, modality), or None when that split has no such file."""
    infos_dir = Path(infos_dir)
    if split == "eshot":
        candidates = [infos_dir / ESHOT_FILES[modality]] if modality in ESHOT_FILES else []
    else:
        candidates = [infos_dir / folder / "infos" / f"{modality}.csv" for folder in SPLIT_FOLDERS[split]]
    return next((path for path in candidates if path.is_file()), None)


class InfosDir(dg.ConfigurableResource):
    """A folder shaped like E-MM1's `datasets/` (default: the sample bundled with the package)."""

    path: str = str(SAMPLE_INFOS_DIR)
