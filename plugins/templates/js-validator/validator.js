// {{name}}: a Berth configuration validator in JavaScript. `berth serve` and
// `berth config validate` run it, beside the bundled `registry-rules`, on
// every configuration they load; an "error" finding stops `berth serve`
// before it binds, a "warning" is logged.
//
// The example policy: the registry must authenticate its clients (auth:
// htpasswd or token). Replace it with your own rules (see "Your rules go
// here" below).
//
// What `validate` receives is JSON: `config` is the registry configuration
// in distribution's shape (config.http.addr, config.storage.filesystem,
// config.auth, ...; driver parameters are strings, absent optional values
// null), and `context` holds "storage-drivers" (the installed drivers) and
// "environment" (the names of the REGISTRY_* variables that are set, never
// their values). Validators are pure: no filesystem, no network, no
// environment of their own.

// The export of the WIT interface `berth:validate/validator`.
export const validator = {
  validate(configJson) {
    let config;
    try {
      config = JSON.parse(configJson).config ?? {};
    } catch {
      return [];
    }
    const findings = [];

    // Your rules go here: read `config`, push one finding per problem.
    // `fieldPath` is the dotted configuration key, `severity` "error" or
    // "warning", `reason` a CamelCase word, `message` a sentence that names
    // the fix.
    const auth = config.auth ?? {};
    if (!auth.htpasswd && !auth.token) {
      findings.push({
        fieldPath: "auth",
        severity: "error",
        reason: "AuthenticationRequired",
        message: "the registry lets anyone push and pull: configure auth.htpasswd or auth.token",
      });
    }

    return findings;
  },
};
