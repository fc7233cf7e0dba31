"""{{name}}: a Berth configuration validator in Python. `berth serve` and
`berth config validate` run it, beside the bundled `registry-rules`, on every
configuration they load; an ERROR finding stops `berth serve` before it binds,
a WARNING is logged.

The example policy: a registry that listens beyond this machine (any address
but loopback) must serve TLS. Replace it with your own rules (see "Your rules
go here" below).

What `validate` receives is JSON: `config` is the registry configuration in
distribution's shape (config["http"]["addr"], config["storage"]["filesystem"],
config["auth"], ...; driver parameters are strings, absent optional values
null), and `context` holds "storage-drivers" (the installed drivers) and
"environment" (the names of the REGISTRY_* variables that are set, never
their values). Validators are pure: no filesystem, no network, no
environment of their own.
"""

import json

from wit_world import exports
from wit_world.exports.validator import Finding, Severity

LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}


def listens_beyond_loopback(http: dict) -> bool:
    if http.get("net") == "unix":
        return False
    host = (http.get("addr") or "").rpartition(":")[0]
    return host not in LOOPBACK  # "" (as in ":5000") is every interface


class Validator(exports.Validator):
    def validate(self, config_json: str) -> list[Finding]:
        try:
            config = json.loads(config_json).get("config") or {}
        except ValueError:
            return []
        findings = []

        # Your rules go here: read `config`, append one Finding per problem.
        # field_path is the dotted configuration key, reason a CamelCase
        # word, message a sentence that names the fix.
        http = config.get("http") or {}
        tls = http.get("tls") or {}
        if listens_beyond_loopback(http) and not tls.get("certificate"):
            findings.append(
                Finding(
                    field_path="http.tls.certificate",
                    severity=Severity.ERROR,
                    reason="TlsRequired",
                    message=f"the registry listens on {http.get('addr')}, beyond this machine, without TLS: "
                    "set http.tls.certificate and http.tls.key, or listen on 127.0.0.1",
                )
            )

        return findings
