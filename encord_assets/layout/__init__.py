"""Where files go: path rules, staging, manifests and the dataset IO manager."""
