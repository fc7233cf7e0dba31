// A Berth configuration validator in JavaScript: S3 storage only on approved
// endpoints. A `regionendpoint` whose host is not one of APPROVED (or below
// one of them) is an error; without `regionendpoint` the driver talks to
// AWS, which is approved. Build it with `plugins/examples/build.sh`
// (componentize-js); drop `endpoint-policy.wasm` into the plugin directory.

const APPROVED = ["s3.amazonaws.com", "storage.internal.example.com"];

function approved(host) {
  return APPROVED.some((name) => host === name || host.endsWith(`.${name}`));
}

// The export of the WIT interface `berth:validate/validator`.
export const validator = {
  validate(configJson) {
    let document;
    try {
      document = JSON.parse(configJson);
    } catch {
      return [];
    }
    const endpoint = document?.config?.storage?.s3?.regionendpoint;
    if (!endpoint) return [];
    let host;
    try {
      host = new URL(endpoint).hostname;
    } catch {
      return []; // registry-rules reports an endpoint that is not a URL
    }
    if (approved(host)) return [];
    return [
      {
        fieldPath: "storage.s3.regionendpoint",
        severity: "error",
        reason: "EndpointNotApproved",
        message: `${host} is not an approved storage endpoint: use ${APPROVED.join(" or ")}`,
      },
    ];
  },
};
