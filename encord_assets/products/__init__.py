"""Products built from the infos and the placed files: captions, reports."""
