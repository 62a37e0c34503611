"""E-MM1 infos CSVs: find them, validate every row, normalize them for the source assets."""
