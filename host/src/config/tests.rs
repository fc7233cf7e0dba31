//! The public face end to end: text and environment in, config or error out.

use std::time::Duration;

use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn ok(yaml: &str, vars: &[(&str, &str)]) -> Loaded {
    parse(yaml, env(vars)).unwrap_or_else(|e| panic!("{e}"))
}

fn invalid(yaml: &str, vars: &[(&str, &str)]) -> (String, String) {
    match parse(yaml, env(vars)) {
        Err(ConfigError::Invalid { key, message }) => (key, message),
        other => panic!("expected an invalid key, got {other:?}"),
    }
}

fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

const FILESYSTEM: &str = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n";

/// distribution's documented example, trimmed to one driver, with `prefix: /`
/// for its `/my/nested/registry/` (refused: see
/// `settings_whose_absence_is_unsafe_are_refused_by_name`).
const DISTRIBUTION: &str = r#"
version: 0.1
log:
  accesslog:
    disabled: true
  level: debug
  formatter: json
  fields:
    service: registry
    replicas: 3
  hooks:
    - type: mail
      levels: [panic]
storage:
  s3:
    accesskey: awsaccesskey
    region: us-west-1
    regionendpoint: http://myobjects.local
    bucket: bucketname
    encrypt: true
    secure: yes
    chunksize: 5242880
    rootdirectory: /s3/object/name/prefix
  delete:
    enabled: true
  redirect:
    disable: false
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
    readonly:
      enabled: false
http:
  addr: localhost:5000
  net: tcp
  prefix: /
  host: https://myregistryaddress.org:5000
  secret: asecretforlocaldevelopment
  relativeurls: false
  draintimeout: 60s
  tls:
    certificate: /path/to/x509/public
    key: /path/to/x509/private
    clientcas:
      - /path/to/ca.pem
      - /path/to/another/ca.pem
    minimumtls: tls1.3
  debug:
    addr: localhost:5001
    prometheus:
      enabled: true
      path: /metrics
  headers:
    X-Content-Type-Options: [nosniff]
  http2:
    disabled: false
redis:
  addr: localhost:6379
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
  file:
    - file: /path/to/checked/file
      interval: 10s
"#;

#[test]
fn distributions_example_reads_with_its_unsupported_parts_named() {
    let Loaded { config, warnings } = ok(DISTRIBUTION, &[]);
    assert_eq!(config.log.level, LogLevel::Debug);
    assert_eq!(config.log.formatter, LogFormatter::Json);
    assert!(config.log.accesslog.disabled);
    assert_eq!(config.log.fields["replicas"], "3");
    assert_eq!(
        config.storage_driver(),
        (
            "s3",
            params(&[
                ("accesskey", "awsaccesskey"),
                ("region", "us-west-1"),
                ("regionendpoint", "http://myobjects.local"),
                ("bucket", "bucketname"),
                ("encrypt", "true"),
                ("secure", "yes"),
                ("chunksize", "5242880"),
                ("rootdirectory", "/s3/object/name/prefix"),
            ])
        )
    );
    let storage = &config.storage;
    assert!(storage.delete.enabled);
    assert!(!storage.redirect.disable);
    assert_eq!(storage.cache.blobdescriptor.as_deref(), Some("inmemory"));
    assert_eq!(storage.maintenance.uploadpurging, UploadPurgingConfig::default());
    assert!(!storage.maintenance.readonly.enabled);

    let http = &config.http;
    assert_eq!(
        http.listen_addr().unwrap(),
        ListenAddr {
            host: Some("localhost".into()),
            port: 5000
        }
    );
    assert_eq!(http.net, Net::Tcp);
    assert_eq!(http.prefix.as_deref(), Some("/"));
    assert_eq!(http.host.as_deref(), Some("https://myregistryaddress.org:5000"));
    assert_eq!(http.secret.as_deref(), Some("asecretforlocaldevelopment"));
    assert_eq!(http.draintimeout, Some(Duration::from_secs(60)));
    assert_eq!(http.tls.certificate.as_deref(), Some(Path::new("/path/to/x509/public")));
    assert_eq!(http.tls.clientcas.len(), 2);
    assert_eq!(http.tls.minimumtls, TlsVersion::Tls13);
    assert_eq!(http.debug_listen_addr().unwrap().map(|a| a.port), Some(5001));
    assert_eq!(http.headers["X-Content-Type-Options"], vec!["nosniff"]);
    assert_eq!(
        config.health.storagedriver,
        StorageDriverHealth {
            enabled: true,
            interval: Duration::from_secs(10),
            threshold: 3
        }
    );
    assert_eq!(config.plugins, PluginsConfig::default());

    let mut unsupported: Vec<&str> = warnings
        .iter()
        .map(|w| {
            assert!(
                w.ends_with("a distribution setting Berth does not support; ignored"),
                "{w}"
            );
            w.split('`').nth(1).unwrap()
        })
        .collect();
    unsupported.sort();
    assert_eq!(
        unsupported,
        ["health.file", "http.http2", "http.relativeurls", "log.hooks", "redis"]
    );
}

#[test]
fn distribution_defaults_apply() {
    let config = ok(FILESYSTEM, &[]).config;
    assert_eq!(config.log.level, LogLevel::Info);
    assert_eq!(config.log.formatter, LogFormatter::Text);
    assert!(!config.storage.delete.enabled);
    assert!(!config.storage.redirect.disable);
    let purging = &config.storage.maintenance.uploadpurging;
    assert!(purging.enabled && !purging.dryrun);
    assert_eq!(
        (purging.age, purging.interval),
        (Duration::from_secs(168 * 3600), Duration::from_secs(24 * 3600))
    );
    assert_eq!(config.http.addr, ":5000");
    assert_eq!(
        config.http.listen_addr().unwrap(),
        ListenAddr { host: None, port: 5000 }
    );
    assert_eq!(config.http.tls.minimumtls, TlsVersion::Tls12);
    assert_eq!(config.health.storagedriver.interval, Duration::from_secs(10));
    assert_eq!(config.plugins.calltimeout, Duration::from_secs(30));
    assert_eq!(config.plugins.memorylimitmib, 256);
}

#[test]
fn any_plugin_name_is_a_driver_and_parameters_are_text_in_order() {
    let yaml = "version: 0.1\nstorage:\n  delete: {enabled: true}\n  mydriver:\n    zeta: 1\n    alpha: 2.5\n    \
                flag: false\n    big: 1e20\n    quoted: '0.10'\n    empty:\n";
    let config = ok(yaml, &[]).config;
    assert_eq!(
        config.storage_driver(),
        (
            "mydriver",
            params(&[
                ("zeta", "1"),
                ("alpha", "2.5"),
                ("flag", "false"),
                ("big", "1e20"),
                ("quoted", "0.10")
            ])
        )
    );
    assert!(config.storage.delete.enabled);
    for short in [
        "version: 0.1\nstorage: inmemory\n",
        "version: 0.1\nstorage:\n  inmemory:\n",
    ] {
        assert_eq!(ok(short, &[]).config.storage_driver(), ("inmemory", vec![]), "{short}");
    }
}

#[test]
fn environment_overrides_each_kind_of_key() {
    let yaml = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n\
                http:\n  headers:\n    X-Content-Type-Options: [sniff]\n";
    let Loaded { config, warnings } = ok(
        yaml,
        &[
            ("REGISTRY_HTTP_ADDR", ":6000"),
            ("REGISTRY_LOG_LEVEL", "debug"),
            ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/x"),
            ("REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS", "100"),
            ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
            ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE", "2h"),
            ("REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS", "[nosniff]"),
            ("REGISTRY_HTTP_HEADERS_STRICT-TRANSPORT-SECURITY", "[max-age=31536000]"),
            ("REGISTRY_HTTP_TLS_CLIENTCAS", "[/a.pem, /b.pem]"),
            ("REGISTRY_HEALTH_STORAGEDRIVER_ENABLED", "yes"),
            ("REGISTRY_PLUGINS_MEMORYLIMITMIB", "512"),
            ("REGISTRY_HTTP_SECRET", "12345"),
            ("PATH", "/usr/bin"),
        ],
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.http.listen_addr().unwrap().port, 6000);
    assert_eq!(config.log.level, LogLevel::Debug);
    assert_eq!(
        config.storage_driver(),
        ("filesystem", params(&[("rootdirectory", "/x"), ("maxthreads", "100")]))
    );
    assert!(config.storage.delete.enabled);
    assert_eq!(config.storage.maintenance.uploadpurging.age, Duration::from_secs(7200));
    assert_eq!(config.http.headers["X-Content-Type-Options"], vec!["nosniff"]);
    assert_eq!(
        config.http.headers["strict-transport-security"],
        vec!["max-age=31536000"]
    );
    assert_eq!(
        config.http.tls.clientcas,
        [PathBuf::from("/a.pem"), PathBuf::from("/b.pem")]
    );
    assert!(config.health.storagedriver.enabled);
    assert_eq!(config.plugins.memorylimitmib, 512);
    assert_eq!(config.http.secret.as_deref(), Some("12345"));
}

#[test]
fn registry_storage_switches_the_driver_and_drops_its_parameters() {
    let yaml =
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  delete:\n    enabled: true\n";
    let config = ok(
        yaml,
        &[
            ("REGISTRY_STORAGE_S3_REGION", "eu-west-1"),
            ("REGISTRY_STORAGE_S3_BUCKET", "images"),
            ("REGISTRY_STORAGE", "s3"),
        ],
    )
    .config;
    assert_eq!(
        config.storage_driver(),
        ("s3", params(&[("bucket", "images"), ("region", "eu-west-1")]))
    );
    assert!(config.storage.delete.enabled, "the file's non-driver settings stay");

    // The same driver as the file's: its parameters from the file go too.
    let config = ok(FILESYSTEM, &[("REGISTRY_STORAGE", "filesystem")]).config;
    assert_eq!(config.storage_driver(), ("filesystem", vec![]));
}

#[test]
fn a_second_driver_from_the_environment_is_an_error_that_says_how_to_switch() {
    let (key, message) = invalid(FILESYSTEM, &[("REGISTRY_STORAGE_S3_REGION", "eu-west-1")]);
    assert_eq!(key, "storage");
    assert!(message.contains("`filesystem`"), "{message}");
    assert!(message.contains("`s3` (from REGISTRY_STORAGE_S3_REGION)"), "{message}");
    assert!(message.contains("REGISTRY_STORAGE=s3"), "{message}");

    let (key, message) = invalid("version: 0.1\nstorage:\n  filesystem: {}\n  s3: {}\n", &[]);
    assert_eq!(key, "storage");
    assert!(message.contains("found `filesystem` and `s3`; keep one"), "{message}");
}

#[test]
fn unknown_keys_are_warnings_with_a_suggestion() {
    let yaml = format!("{FILESYSTEM}http:\n  adr: ':1'\n  tsl:\n  tls:\n    certificat: /c\nlogg: {{level: debug}}\n");
    let Loaded { config, warnings } = ok(&yaml, &[]);
    assert_eq!(config.http.addr, ":5000");
    assert_eq!(
        warnings,
        [
            "unknown configuration key `http.adr` (did you mean `http.addr`?); ignored",
            "unknown configuration key `http.tsl` (did you mean `http.tls`?); ignored",
            "unknown configuration key `http.tls.certificat` (did you mean `http.tls.certificate`?); ignored",
            "unknown configuration key `logg` (did you mean `log`?); ignored",
        ]
    );
}

#[test]
fn unknown_variables_are_warnings_naming_them() {
    let Loaded { config, warnings } = ok(
        FILESYSTEM,
        &[
            ("REGISTRY_HTTP_ADR", ":6000"),
            ("REGISTRY_REDIS_ADDR", "localhost:6379"),
            ("REGISTRY_PORT", "tcp://10.0.0.1:5000"),
            ("REGISTRY_LOG_LEVEL_DEBUG", "1"),
        ],
    );
    assert_eq!(config.http.addr, ":5000");
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    assert!(warnings.contains(
        &"unknown environment variable `REGISTRY_HTTP_ADR` (did you mean `REGISTRY_HTTP_ADDR`?); ignored".to_string()
    ));
    assert!(warnings.contains(&"unknown environment variable `REGISTRY_PORT`; ignored".to_string()));
    assert!(warnings
        .iter()
        .any(|w| w.contains("`REGISTRY_REDIS_ADDR` sets `redis`, a distribution setting")));
    assert!(warnings
        .iter()
        .any(|w| w.contains("`REGISTRY_LOG_LEVEL_DEBUG`: `log.level` is a value")));
}

#[test]
fn wrong_types_name_the_key() {
    for (yaml, want_key, want) in [
        (
            "storage:\n  filesystem: {}\n  delete: {enabled: maybe}\n",
            "storage.delete.enabled",
            "boolean",
        ),
        (
            "storage: {inmemory: {}}\nhttp: {tls: {clientcas: [/a, {x: 1}]}}\n",
            "http.tls.clientcas[1]",
            "string",
        ),
        (
            "storage: {inmemory: {}}\nhealth: {storagedriver: {threshold: -1}}\n",
            "health.storagedriver.threshold",
            "-1",
        ),
        (
            "storage: {inmemory: {}}\nhttp: {draintimeout: 10x}\n",
            "http.draintimeout",
            "unknown unit \"x\"",
        ),
        (
            "storage: {inmemory: {}}\nhttp: {draintimeout: -5s}\n",
            "http.draintimeout",
            "negative",
        ),
        (
            "storage: {gcs: {credentials: {type: x}}}\n",
            "storage.gcs.credentials",
            "driver parameter",
        ),
        (
            "storage: {inmemory: {}}\nlog: {level: verbose}\n",
            "log.level",
            "error, warn, info or debug",
        ),
        (
            "storage: {inmemory: {}}\nlog: {formatter: logstash}\n",
            "log.formatter",
            "`text` or `json`",
        ),
        (
            "storage: {inmemory: {}}\nhttp: {tls: {minimumtls: tls9}}\n",
            "http.tls.minimumtls",
            "tls1.2",
        ),
        ("storage: {inmemory: {}}\nhttp: [1]\n", "http", "struct"),
        (
            "storage: {inmemory: {}}\nhttp: {addr: 'localhost'}\n",
            "http.addr",
            "missing port",
        ),
        (
            "storage: {inmemory: {}}\nplugins: {memorylimitmib: 0}\n",
            "plugins.memorylimitmib",
            "at least 1",
        ),
        (
            "storage: {inmemory: {}}\nplugins: {memorylimitmib: 8192}\n",
            "plugins.memorylimitmib",
            "at most 4096",
        ),
        (
            "storage: {inmemory: {}}\nplugins: {calltimeout: 0s}\n",
            "plugins.calltimeout",
            "longer than 0",
        ),
        ("storage: {delete: {enabled: true}}\n", "storage", "no storage driver"),
        ("log: {level: info}\n", "storage", "missing"),
    ] {
        let yaml = format!("version: 0.1\n{yaml}");
        let (key, message) = invalid(&yaml, &[]);
        assert_eq!(key, want_key, "{yaml}: {message}");
        assert!(message.contains(want), "{yaml}: {message}");
    }
}

#[test]
fn a_wrong_value_from_the_environment_names_the_variable() {
    let (key, message) = invalid(FILESYSTEM, &[("REGISTRY_HTTP_DRAINTIMEOUT", "10x")]);
    assert_eq!(key, "http.draintimeout");
    assert!(message.ends_with("(from REGISTRY_HTTP_DRAINTIMEOUT)"), "{message}");

    let (key, message) = invalid(FILESYSTEM, &[("REGISTRY_HTTP_ADDR", "5000")]);
    assert_eq!(key, "http.addr");
    assert!(message.contains("(from REGISTRY_HTTP_ADDR)"), "{message}");

    let (key, message) = invalid(FILESYSTEM, &[("REGISTRY_HTTP_HEADERS_X-A", "{a: b}")]);
    assert_eq!(key, "http.headers.x-a");
    assert!(message.contains("(from REGISTRY_HTTP_HEADERS_X-A)"), "{message}");
}

#[test]
fn durations_and_booleans_read_as_go_read_them() {
    let yaml = format!(
        "{FILESYSTEM}  maintenance:\n    uploadpurging: {{age: 1h30m, interval: 1500000000, dryrun: on}}\n    \
         readonly: {{enabled: Yes}}\nhttp: {{draintimeout: 300ms}}\nhealth: {{storagedriver: {{interval: 0, threshold: 0}}}}\n"
    );
    let config = ok(&yaml, &[]).config;
    let purging = &config.storage.maintenance.uploadpurging;
    assert_eq!(purging.age, Duration::from_secs(5400));
    assert_eq!(
        purging.interval,
        Duration::from_millis(1500),
        "an integer is nanoseconds"
    );
    assert!(purging.dryrun && purging.enabled);
    assert!(config.storage.maintenance.readonly.enabled);
    assert_eq!(config.http.draintimeout, Some(Duration::from_millis(300)));
    let health = &config.health.storagedriver;
    assert_eq!(
        (health.interval, health.threshold),
        (Duration::from_secs(10), 1),
        "zero means the default"
    );
}

#[test]
fn the_version_is_required_and_must_be_0_1() {
    for text in [
        "version: 0.1\nstorage: inmemory\n",
        "version: '0.1'\nstorage: inmemory\n",
    ] {
        ok(text, &[]);
    }
    for (text, want) in [
        ("storage: inmemory\n", "missing"),
        ("version:\nstorage: inmemory\n", "missing"),
        ("version: 0.2\nstorage: inmemory\n", "unsupported version `0.2`"),
        ("", "missing"),
    ] {
        let (key, message) = invalid(text, &[]);
        assert_eq!(key, "version");
        assert!(message.contains(want), "{text:?}: {message}");
    }
    let (_, message) = invalid("version: 0.1\nstorage: inmemory\n", &[("REGISTRY_VERSION", "0.3")]);
    assert!(message.contains("(from REGISTRY_VERSION)"), "{message}");
}

#[test]
fn malformed_yaml_is_a_syntax_error_with_its_place() {
    match parse("version: 0.1\nstorage:\n  inmemory: {}\n bad: indent\n", Vec::new()) {
        Err(ConfigError::Syntax { message, .. }) => assert!(message.contains("line 4"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse("- a\n- b\n", Vec::new()),
        Err(ConfigError::Syntax { .. })
    ));
}

#[test]
fn deprecated_spellings_still_work_with_a_warning() {
    let Loaded { config, warnings } = ok(
        "version: 0.1\nloglevel: DEBUG\nstorage:\n  inmemory:\n  cache: {layerinfo: inmemory}\n",
        &[],
    );
    assert_eq!(config.log.level, LogLevel::Debug);
    assert_eq!(config.storage.cache.blobdescriptor.as_deref(), Some("inmemory"));
    assert_eq!(
        warnings,
        [
            "`loglevel` is deprecated; write `log.level`",
            "`storage.cache.layerinfo` is deprecated; write `storage.cache.blobdescriptor`"
        ]
    );

    let Loaded { config, warnings } = ok(
        "version: 0.1\nloglevel: debug\nlog: {level: warn}\nstorage: inmemory\n",
        &[],
    );
    assert_eq!(config.log.level, LogLevel::Warn);
    assert!(warnings[0].contains("`loglevel` is ignored"), "{warnings:?}");
}

#[test]
fn unix_sockets_take_a_path() {
    let config = ok(
        "version: 0.1\nstorage: inmemory\nhttp: {net: unix, addr: /run/berth.sock}\n",
        &[],
    )
    .config;
    assert_eq!(config.http.net, Net::Unix);
    assert_eq!(config.http.addr, "/run/berth.sock");
}

#[test]
fn without_a_file_the_local_default_serves_loopback_from_the_data_directory() {
    let Loaded { config, warnings } = load(None, env(&[("XDG_DATA_HOME", "/data"), ("HOME", "/home/u")])).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        config.storage_driver(),
        ("filesystem", params(&[("rootdirectory", "/data/berth/registry")]))
    );
    assert_eq!(config.http.listen_addr().unwrap().to_string(), "127.0.0.1:5000");
    assert_eq!(config.log.level, LogLevel::Info);
    assert!(!config.storage.delete.enabled);

    let config = load(None, env(&[("HOME", "/home/u"), ("XDG_DATA_HOME", "")]))
        .unwrap()
        .config;
    assert_eq!(
        config.storage.parameters,
        params(&[("rootdirectory", "/home/u/.local/share/berth/registry")])
    );

    let config = load(None, env(&[("HOME", "/home/u"), ("REGISTRY_STORAGE", "inmemory")]))
        .unwrap()
        .config;
    assert_eq!(config.storage_driver(), ("inmemory", vec![]));

    match load(None, Vec::new()) {
        Err(ConfigError::Invalid { key, message }) => {
            assert_eq!(key, "storage.filesystem.rootdirectory");
            assert!(
                message.contains("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(load(None, env(&[("REGISTRY_STORAGE", "inmemory")])).is_ok());
}

#[test]
fn a_file_is_read_and_a_missing_one_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, FILESYSTEM).unwrap();
    let config = load(Some(&path), Vec::new()).unwrap().config;
    assert_eq!(config.storage.driver, "filesystem");

    let missing = dir.path().join("nope.yml");
    let err = load(Some(&missing), Vec::new()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("nope.yml"), "{err}");
}

#[test]
fn yaml_merge_keys_are_followed() {
    let yaml = "version: 0.1\ncommon: &c {level: debug}\nlog:\n  <<: *c\nstorage: inmemory\n";
    let Loaded { config, warnings } = ok(yaml, &[]);
    assert_eq!(config.log.level, LogLevel::Debug);
    assert_eq!(warnings, ["unknown configuration key `common`; ignored"]);
}

#[test]
fn a_variable_below_a_value_is_skipped_with_a_warning_as_go_does() {
    let Loaded { config, warnings } = ok(
        "version: 0.1\nstorage: {s3: {region: eu}}\n",
        &[
            ("REGISTRY_STORAGE_S3_FOO_BAR", "1"),
            ("REGISTRY_HEALTH_STORAGEDRIVER_THRESHOLD_X", "2"),
        ],
    );
    assert_eq!(config.storage_driver(), ("s3", params(&[("region", "eu")])));
    assert_eq!(config.health.storagedriver.threshold, 1);
    assert_eq!(
        warnings,
        [
            "environment variable `REGISTRY_STORAGE_S3_FOO_BAR`: `storage.s3.foo` is a value, not a section; ignored",
            "environment variable `REGISTRY_HEALTH_STORAGEDRIVER_THRESHOLD_X`: `health.storagedriver.threshold` is a \
             value, not a section; ignored",
        ]
    );
}

#[test]
fn registry_storage_as_a_map_replaces_the_whole_section() {
    let config = ok(
        "version: 0.1\nstorage: {filesystem: {rootdirectory: /x}, delete: {enabled: true}}\n",
        &[("REGISTRY_STORAGE", "{inmemory: {}, redirect: {disable: true}}")],
    )
    .config;
    assert_eq!(config.storage_driver(), ("inmemory", vec![]));
    assert!(config.storage.redirect.disable);
    assert!(!config.storage.delete.enabled);
}

/// The unknown-key check compares what was written with the serialised
/// config: a config must serialise under the names it is read by.
#[test]
fn a_config_serialises_to_what_reads_back_the_same() {
    let config = ok(DISTRIBUTION, &[]).config;
    let yaml = format!("version: 0.1\n{}", serde_norway::to_string(&config).unwrap());
    let Loaded {
        config: again,
        warnings,
    } = ok(&yaml, &[]);
    assert_eq!(again, config);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn token_auth_needs_its_names_and_a_key() {
    let token = |fields: &str| format!("{FILESYSTEM}auth:\n  token:\n{fields}");
    let complete = "    realm: https://auth.example.com/token\n    service: registry\n    issuer: auth\n    jwks: /etc/jwks.json\n";
    let Loaded { config, .. } = ok(&token(complete), &[]);
    let parsed = config.auth.token.expect("auth.token");
    assert_eq!(parsed.jwks.as_deref(), Some(Path::new("/etc/jwks.json")));
    for (fields, key, words) in [
        (
            "    service: registry\n    issuer: auth\n    jwks: /j\n",
            "auth.token.realm",
            "token server's URL",
        ),
        (
            "    realm: https://a/t\n    issuer: auth\n    jwks: /j\n",
            "auth.token.service",
            "`aud`",
        ),
        (
            "    realm: https://a/t\n    service: registry\n    jwks: /j\n",
            "auth.token.issuer",
            "`iss`",
        ),
        (
            "    realm: https://a/t\n    service: registry\n    issuer: auth\n",
            "auth.token.rootcertbundle",
            "jwks",
        ),
    ] {
        let (found, message) = invalid(&token(fields), &[]);
        assert_eq!(found, key, "{message}");
        assert!(message.contains(words), "{message}");
    }
    // autoredirect makes the realm the registry's own host.
    ok(
        &token("    autoredirect: true\n    service: registry\n    issuer: auth\n    jwks: /j\n"),
        &[],
    );
    // One scheme at a time, and the token's claims decide access.
    let both = format!("{}  htpasswd:\n    realm: r\n    path: /h\n", token(complete));
    assert_eq!(invalid(&both, &[]).0, "auth");
    let access = format!("{}  access:\n    repositories: []\n", token(complete));
    let (key, message) = invalid(&access, &[]);
    assert_eq!(key, "auth.access");
    assert!(message.contains("`access` claim"), "{message}");
    // From the environment, the missing field is named with its variable.
    let (key, message) = invalid(FILESYSTEM, &[("REGISTRY_AUTH_TOKEN_REALM", "https://a/token")]);
    assert_eq!(key, "auth.token.service", "{message}");
}

#[test]
fn settings_whose_absence_is_unsafe_are_refused_by_name() {
    let letsencrypt = "http:\n  tls:\n    letsencrypt:\n      cachefile: /c\n";
    let urls = "validation:\n  manifests:\n    urls:\n      allow: ['^https://']\n";
    let middleware = "middleware:\n  storage:\n    - name: cloudfront\n";
    let ciphers = "http:\n  tls:\n    ciphersuites: [TLS_AES_128_GCM_SHA256]\n";
    for (extra, key, words) in [
        ("auth:\n  silly:\n    realm: r\n", "auth.silly", "development"),
        (letsencrypt, "http.tls.letsencrypt", "http.tls.certificate"),
        (urls, "validation.manifests.urls", "foreign layer"),
        (middleware, "middleware", "CloudFront"),
        (ciphers, "http.tls.ciphersuites", "minimumtls"),
        ("policy:\n  repository:\n    classes: [image]\n", "policy", "policies"),
        ("http:\n  prefix: /my/nested/registry/\n", "http.prefix", "/v2/ only"),
    ] {
        let (found, message) = invalid(&format!("{FILESYSTEM}{extra}"), &[]);
        assert_eq!(found, key);
        assert!(message.contains(words), "{message}");
    }
    // An empty section asks for nothing; the harmless `validation` keys warn.
    ok(&format!("{FILESYSTEM}auth: {{}}\nmiddleware:\n"), &[]);
    let Loaded { warnings, .. } = ok(&format!("{FILESYSTEM}validation:\n  disabled: true\n"), &[]);
    assert_eq!(
        warnings,
        ["`validation.disabled` is a distribution setting Berth does not support; ignored"]
    );
}

#[test]
fn index_validation_takes_distributions_keys() {
    let Loaded { config, .. } = ok(FILESYSTEM, &[]);
    assert_eq!(config.validation.manifests.indexes.platforms, IndexPlatforms::All);
    let list = "validation:\n  manifests:\n    indexes:\n      platforms: list\n      platformlist:\n        - architecture: amd64\n          os: linux\n";
    let Loaded { config, warnings } = ok(&format!("{FILESYSTEM}{list}"), &[]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let indexes = &config.validation.manifests.indexes;
    let amd64 = PlatformConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
    };
    let arm64 = PlatformConfig {
        architecture: "arm64".into(),
        os: "linux".into(),
    };
    assert!(indexes.requires(Some(&amd64)));
    assert!(!indexes.requires(Some(&arm64)));
    assert!(!indexes.requires(None));
    let Loaded { config, .. } = ok(
        FILESYSTEM,
        &[("REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMS", "none")],
    );
    assert!(!config.validation.manifests.indexes.requires(Some(&amd64)));

    let (key, message) = invalid(
        &format!("{FILESYSTEM}validation:\n  manifests:\n    indexes:\n      platforms: list\n"),
        &[],
    );
    assert_eq!(key, "validation.manifests.indexes.platformlist");
    assert!(message.contains("architecture, os"), "{message}");
    let (key, message) = invalid(
        &format!("{FILESYSTEM}validation:\n  manifests:\n    indexes:\n      platforms: some\n"),
        &[],
    );
    assert_eq!(key, "validation.manifests.indexes.platforms");
    assert!(message.contains("all"), "{message}");
}

#[test]
fn a_total_plugin_memory_below_one_instance_is_refused() {
    let (key, message) = invalid(
        &format!("{FILESYSTEM}plugins:\n  memorylimitmib: 512\n  totalmemorymib: 256\n"),
        &[],
    );
    assert_eq!(key, "plugins.totalmemorymib");
    assert!(message.contains("512"), "{message}");
    let loaded = ok(&format!("{FILESYSTEM}plugins:\n  totalmemorymib: 1024\n"), &[]);
    assert_eq!(loaded.config.plugins.totalmemorymib, Some(1024));
}

#[test]
fn the_content_cache_is_in_memory_unless_turned_off() {
    let loaded = ok(FILESYSTEM, &[]);
    assert_eq!(loaded.config.storage.cache.entries(), 10_000);
    let sized = format!("{FILESYSTEM}  cache:\n    blobdescriptor: inmemory\n    blobdescriptorsize: 500\n");
    let loaded = ok(&sized, &[]);
    assert_eq!(loaded.config.storage.cache.entries(), 500);
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let off = format!("{FILESYSTEM}  cache:\n    blobdescriptor: none\n");
    assert_eq!(ok(&off, &[]).config.storage.cache.entries(), 0);

    let (key, message) = invalid(&format!("{FILESYSTEM}  cache:\n    blobdescriptor: redis\n"), &[]);
    assert_eq!(key, "storage.cache.blobdescriptor");
    assert!(message.contains("`redis` is not supported"), "{message}");
    for size in ["0", "1000001"] {
        let (key, _) = invalid(&format!("{FILESYSTEM}  cache:\n    blobdescriptorsize: {size}\n"), &[]);
        assert_eq!(key, "storage.cache.blobdescriptorsize");
    }
}

#[test]
fn request_limits_are_read_under_their_openshift_name_too() {
    let Loaded { config, .. } = ok(
        &format!("{FILESYSTEM}requests:\n  write:\n    maxrunning: 2\n    maxwaitinqueue: 5s\n"),
        &[],
    );
    assert_eq!(config.requests.write.maxrunning, 2);
    assert_eq!(config.requests.write.maxwaitinqueue, std::time::Duration::from_secs(5));
    let Loaded { config, warnings } = ok(
        &format!("{FILESYSTEM}openshift:\n  requests:\n    read:\n      maxrunning: 3\n"),
        &[("REGISTRY_OPENSHIFT_REQUESTS_READ_MAXINQUEUE", "7")],
    );
    assert_eq!(
        (config.requests.read.maxrunning, config.requests.read.maxinqueue),
        (3, 7)
    );
    assert!(
        warnings.iter().any(|w| w.contains("openshift.requests")),
        "{warnings:?}"
    );
    let (key, message) = invalid(&format!("{FILESYSTEM}requests:\n  read:\n    maxinqueue: 4\n"), &[]);
    assert_eq!(key, "requests.read.maxrunning");
    assert!(message.contains("set maxrunning"), "{message}");
}

#[test]
fn plugin_watch_and_pulls_are_bounded_or_refused() {
    let yaml = |plugins: &str| format!("{FILESYSTEM}plugins:\n{plugins}");
    let (key, message) = invalid(&yaml("  watchinterval: 1ms\n"), &[]);
    assert_eq!(key, "plugins.watchinterval");
    assert!(message.contains("at least 100ms"), "{message}");
    let off = parse(&yaml("  watchinterval: 0s\n"), env(&[])).expect("0s turns the watch off");
    assert!(off.config.plugins.watchinterval.is_zero());
    let (key, message) = invalid(&yaml("  oci:\n    - {name: p, reference: reg.io/p:1}\n"), &[]);
    assert_eq!(key, "plugins.oci[0].reference");
    assert!(message.contains("has no digest"), "{message}");
    let digest = format!("sha256:{}", "a".repeat(64));
    let twice = format!(
        "  oci:\n    - {{name: p, reference: reg.io/p@{digest}}}\n    - {{name: p, reference: reg.io/q@{digest}}}\n"
    );
    let (key, _) = invalid(&yaml(&twice), &[]);
    assert_eq!(key, "plugins.oci[1].name");
}
