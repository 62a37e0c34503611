"""Encord import manifests: the placed files of a release as the JSON and CSV files Encord's cloud-storage import reads."""
