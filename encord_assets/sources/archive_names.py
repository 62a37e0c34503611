"""Member names inside upstream archives are untrusted: refuse any that could escape."""

import re

_DRIVE = re.compile(r"^[A-Za-z]:")


def member_name_problem(name: str) -> str | None:
    """Why an archive member name is unsafe to act on (None when it is a plain relative path)."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "contains NUL"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or _DRIVE.match(name):
        return "absolute path"
    if ".." in name.split("/"):
        return "contains '..'"
    return None
