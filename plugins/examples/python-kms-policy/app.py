"""A Berth configuration validator in Python: production buckets must be
encrypted with a KMS key.

A bucket whose name has `prod` as one of its dash-separated words
(`team-prod-images`) must have `encrypt: true` and a `keyid`. Build it with
`plugins/examples/build.sh` (componentize-py); drop `kms-policy.wasm` into
the plugin directory.
"""

import json

from wit_world import exports
from wit_world.exports.validator import Finding, Severity


def is_production(bucket: str) -> bool:
    return "prod" in bucket.split("-")


class Validator(exports.Validator):
    def validate(self, config_json: str) -> list[Finding]:
        try:
            document = json.loads(config_json)
        except ValueError:
            return []
        # Driver parameters arrive as strings, absent ones as null.
        s3 = ((document.get("config") or {}).get("storage") or {}).get("s3")
        if not isinstance(s3, dict):
            return []
        bucket = s3.get("bucket") or ""
        if not is_production(bucket):
            return []
        missing = []
        if str(s3.get("encrypt") or "").lower() != "true":
            missing.append(("encrypt", "EncryptionRequired", "set encrypt: true"))
        if not s3.get("keyid"):
            missing.append(("keyid", "KmsKeyRequired", "set keyid to the ARN of its KMS key"))
        return [
            Finding(
                field_path=f"storage.s3.{key}",
                severity=Severity.ERROR,
                reason=reason,
                message=f"bucket {bucket} holds production images: {fix}",
            )
            for key, reason, fix in missing
        ]
