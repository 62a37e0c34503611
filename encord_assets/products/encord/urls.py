"""Object URLs of the layout's files, in the form the cloud provider (and so Encord's import) expects.

An `s3://BUCKET/PREFIX` ROOT maps to the provider's URL of each object; any ROOT (a local folder in
particular, once uploaded somewhere) maps to an explicit base URL. Keys are percent-encoded (RFC 3986:
everything but unreserved characters and `/`), so names with spaces, commas or non-ASCII characters
give URLs that the provider serves.
"""

from urllib.parse import quote

import dagster as dg

PROVIDERS = ("aws", "gcp", "azure", "otc", "endpoint")


class ObjectUrlError(ValueError):
    """Object URLs cannot be formed from the settings given, with the reason."""


def encode_key(key: str) -> str:
    return quote(key, safe="/")


def url_base(root: str, provider: str = "aws", region: str = "", azure_account: str = "", endpoint_url: str = "", object_url_base: str = "") -> str:
    """The URL that ROOT stands for; an object's URL is this, `/`, and its encoded key under ROOT."""
    if object_url_base:
        return object_url_base.rstrip("/")
    if not root.startswith("s3://"):
        raise ObjectUrlError(
            f"ROOT {root!r} is not in a bucket: pass --object-url-base (or set ENCORD_OBJECT_URL_BASE) with the URL "
            "where ROOT was uploaded, for example https://my-bucket.s3.eu-west-1.amazonaws.com/e-mm1"
        )
    bucket, _, prefix = root[len("s3://"):].partition("/")
    path = encode_key(prefix.strip("/"))
    tail = f"/{path}" if path else ""
    if provider == "aws":
        if not region:
            raise ObjectUrlError("AWS object URLs name the bucket's region: set --region (or AWS_REGION / ENCORD_URL_REGION)")
        return f"https://{bucket}.s3.{region}.amazonaws.com{tail}"
    if provider == "gcp":
        return f"gs://{bucket}{tail}"
    if provider == "azure":
        if not azure_account:
            raise ObjectUrlError("Azure blob URLs name the storage account: set --azure-account (or ENCORD_AZURE_ACCOUNT); the bucket is the container")
        return f"https://{azure_account}.blob.core.windows.net/{bucket}{tail}"
    if provider == "otc":
        if not region:
            raise ObjectUrlError("Open Telekom Cloud object URLs name the region: set --region (or ENCORD_URL_REGION), e.g. eu-de")
        return f"https://{bucket}.obs.{region}.otc.t-systems.com{tail}"
    if provider == "endpoint":
        if not endpoint_url:
            raise ObjectUrlError("path-style URLs on an S3-compatible endpoint need AWS_ENDPOINT_URL (or --endpoint-url)")
        return f"{endpoint_url.rstrip('/')}/{bucket}{tail}"
    raise ObjectUrlError(f"unknown URL provider {provider!r}: one of {', '.join(PROVIDERS)}")


class EncordUrls(dg.ConfigurableResource):
    """How the object URLs of Encord import manifests are formed from ROOT (see `url_base`)."""

    provider: str = "aws"
    region: str = ""
    azure_account: str = ""
    endpoint_url: str = ""
    # the URL ROOT was uploaded to; overrides the provider's form (needed for a local ROOT)
    object_url_base: str = ""

    def base(self, root: str) -> str:
        return url_base(root, self.provider, self.region, self.azure_account, self.endpoint_url, self.object_url_base)
