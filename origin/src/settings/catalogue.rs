//! Every setting the origin reads, with its default and meaning: what `surge-origin --help`
//! lists. A test keeps it equal to what the subsystems actually read.

/// One setting.
pub struct Setting {
    /// The environment variable (also `<NAME>_FILE` for secrets, and the `SURGE_CONFIG` key).
    pub var: &'static str,
    /// What applies when it is unset.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

/// The settings, in the order `--help` lists them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        var: "SURGE_CONFIG",
        default: "unset: the environment only",
        meaning: "a TOML file of settings, each named in lower case without SURGE_ (listen = \"127.0.0.1:8080\"); the environment wins over it",
    },
    Setting {
        var: "SURGE_LISTEN",
        default: "127.0.0.1:8080",
        meaning: "public listen address",
    },
    Setting {
        var: "SURGE_ADMIN_LISTEN",
        default: "127.0.0.1:9090",
        meaning: "the admin API's own listen address (/performance/* is served only here)",
    },
    Setting {
        var: "SURGE_LOG_FORMAT",
        default: "JSON when stdout is not a terminal, text on a terminal",
        meaning: "json or text; JSON lines never carry colour codes (RUST_LOG sets the level)",
    },
    Setting {
        var: "OTEL_EXPORTER_OTLP_ENDPOINT",
        default: "unset: spans stay in /performance/apm/traces",
        meaning: "an OTLP/HTTP collector (http://collector:4318); spans go to <endpoint>/v1/traces as protobuf. The SDK also reads OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*, OTEL_EXPORTER_OTLP_(TRACES_)HEADERS and _TIMEOUT",
    },
    Setting {
        var: "OTEL_TRACES_SAMPLER",
        default: "parentbased_always_on",
        meaning: "which requests are traced: always_on, always_off, traceidratio, or their parentbased_ forms (a caller's sampled flag decides); a request not sampled gets no span at all (no cost, and its log lines carry no trace id) but still a traceparent and x-request-id",
    },
    Setting {
        var: "OTEL_TRACES_SAMPLER_ARG",
        default: "1",
        meaning: "the ratio (0–1) of traces started here that traceidratio samples, e.g. 0.01",
    },
    Setting {
        var: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        default: "unset: OTEL_EXPORTER_OTLP_ENDPOINT",
        meaning: "the full traces URL, when it is not <endpoint>/v1/traces",
    },
    Setting {
        var: "OTEL_EXPORTER_OTLP_PROTOCOL",
        default: "http/protobuf",
        meaning: "only http/protobuf is spoken (also OTEL_EXPORTER_OTLP_TRACES_PROTOCOL); anything else stops start-up",
    },
    Setting {
        var: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        default: "OTEL_EXPORTER_OTLP_PROTOCOL",
        meaning: "the protocol for traces only; http/protobuf",
    },
    Setting {
        var: "OTEL_SERVICE_NAME",
        default: "surge-origin",
        meaning: "service.name of exported spans",
    },
    Setting {
        var: "OTEL_TRACES_EXPORTER",
        default: "otlp",
        meaning: "otlp, or none to export nothing",
    },
    Setting {
        var: "OTEL_SDK_DISABLED",
        default: "false",
        meaning: "true exports nothing (the trace page still fills)",
    },
    Setting {
        var: "SURGE_METRICS_LISTEN",
        default: "unset: metrics only at /performance/metrics",
        meaning: "a listener serving only GET /metrics (OpenMetrics) without the admin token, for Prometheus",
    },
    Setting {
        var: "SURGE_PUBLIC_HTTP",
        default: "http1",
        meaning: "what the public listener speaks: http1 (HTTP/1.1 only, no protocol sniffing) or auto (HTTP/1.1 and cleartext HTTP/2, told apart by the first bytes)",
    },
    Setting {
        var: "SURGE_DRAIN",
        default: "5s",
        meaning: "on SIGTERM (or Ctrl-C): /readyz answers 503 at once and the origin keeps serving this long (0–5m), then finishes in-flight requests, sends pending purges and exits 0",
    },
    Setting {
        var: "SURGE_START_WARM",
        default: "none",
        meaning: "paths fetched through the public routes before /readyz says ready (comma-separated)",
    },
    Setting {
        var: "SURGE_REGION",
        default: "local",
        meaning: "region name in x-surge-region and metrics",
    },
    Setting {
        var: "SURGE_ADMIN_TOKEN",
        default: "unset: admin API off",
        meaning: "bearer token for /performance/* (≥ 16 chars)",
    },
    Setting {
        var: "SURGE_POLICY",
        default: "shipped policy",
        meaning: "a TOML or JSON policy file",
    },
    Setting {
        var: "DATABASE_URL",
        default: "unset: embedded demo store",
        meaning: "the Postgres primary (elections; vote shard 0 unless DATABASE_SHARD_URLS is set)",
    },
    Setting {
        var: "DATABASE_REPLICA_URLS",
        default: "none",
        meaning: "read replicas, comma-separated",
    },
    Setting {
        var: "DATABASE_SHARD_URLS",
        default: "none: the main database is the one shard",
        meaning: "vote shards: primary[,replica…] per shard, shards separated by ;",
    },
    Setting {
        var: "SURGE_VOTE_BATCH_MAX",
        default: "500",
        meaning: "group commit: most votes per batch, longest a vote waits for its batch",
    },
    Setting {
        var: "SURGE_VOTE_BATCH_WAIT",
        default: "2ms",
        meaning: "group commit: most votes per batch, longest a vote waits for its batch",
    },
    Setting {
        var: "SURGE_VOTE_BATCHES_IN_FLIGHT",
        default: "4",
        meaning: "batches committing at once per shard",
    },
    Setting {
        var: "SURGE_VOTER_PEPPER",
        default: "required with DATABASE_URL",
        meaning: "the secret voting codes are hashed with (≥ 32 chars, the same on every origin)",
    },
    Setting {
        var: "SURGE_CLIENT_IP_HEADER",
        default: "unset: the TCP peer",
        meaning: "header carrying the client address behind a trusted proxy (e.g. cf-connecting-ip), for login throttling",
    },
    Setting {
        var: "SURGE_REPLICA_MAX_LAG",
        default: "5s",
        meaning: "lag beyond which a replica takes no reads",
    },
    Setting {
        var: "SURGE_DB_POOL_SIZE",
        default: "16",
        meaning: "connections per pool",
    },
    Setting {
        var: "SURGE_SLOW_QUERY",
        default: "100ms",
        meaning: "statements at least this slow go to the slow-query log (1ms–60s)",
    },
    Setting {
        var: "SURGE_SEED_DEMO",
        default: "false",
        meaning: "insert the demo election into an empty database",
    },
    Setting {
        var: "REDIS_URL",
        default: "unset: L1 only",
        meaning: "redis://host:port, or redis+cluster://h1:p1,h2:p2; several URLs (comma-separated) are a cluster's seed nodes; rediss://user:password@host:port speaks TLS as an ACL user (a secret: REDIS_URL_FILE works too)",
    },
    Setting {
        var: "REDIS_STATE_URL",
        default: "unset: REDIS_URL's Redis",
        meaning: "a Redis with maxmemory-policy noeviction for what must never be evicted: the tag versions and the write-version counter (and the write-behind stream); same forms as REDIS_URL, needs REDIS_URL (a secret: REDIS_STATE_URL_FILE works too)",
    },
    Setting {
        var: "REDIS_CA_FILE",
        default: "unset: the platform's roots",
        meaning: "a CA (PEM) trusted for rediss:// besides the platform's roots",
    },
    Setting {
        var: "DATABASE_CA_FILE",
        default: "unset: the platform's roots",
        meaning: "a CA (PEM) trusted for TLS to Postgres; whether TLS is used is each URL's sslmode (disable, prefer — the default — or require), and the server's certificate is always verified",
    },
    Setting {
        var: "CLOUDFLARE_API_TOKEN",
        default: "unset: no CDN purge",
        meaning: "the zone to purge (token needs Cache Purge)",
    },
    Setting {
        var: "CLOUDFLARE_ZONE_ID",
        default: "unset: no CDN purge",
        meaning: "the zone to purge (token needs Cache Purge)",
    },
    Setting {
        var: "CLOUDFLARE_API_BASE",
        default: "Cloudflare's",
        meaning: "the API base (the tests point it at the stand-in)",
    },
    Setting {
        var: "SURGE_COOKIE_KEYS",
        default: "a per-process random key",
        meaning: "login signing keys, comma-separated, newest first",
    },
    Setting {
        var: "SURGE_EDGE_KEYS",
        default: "unset: public routes answer anyone",
        meaning: "the edge's signing keys (id:secret, comma-separated, newest first); with them every public request the edge did not sign gets 403 (probes excepted)",
    },
    Setting {
        var: "SURGE_SESSION_TTL",
        default: "1h",
        meaning: "login lifetime",
    },
    Setting {
        var: "SURGE_INSECURE_COOKIES",
        default: "false",
        meaning: "drop Secure from cookies (plain-HTTP local runs)",
    },
    Setting {
        var: "SURGE_PURGE_COALESCE",
        default: "1s",
        meaning: "window gathering vote-triggered results purges",
    },
    Setting {
        var: "SURGE_KUBE",
        default: "off",
        meaning: "scaling hooks: in-cluster (service account) or kubeconfig (KUBECONFIG)",
    },
    Setting {
        var: "SURGE_KUBE_NAMESPACE",
        default: "surge",
        meaning: "namespace of the managed workloads",
    },
    Setting {
        var: "SURGE_SCALING_WORKLOADS",
        default: "api-gateway,auth-service,voting-service",
        meaning: "Deployments managed, each with an HPA of the same name",
    },
    Setting {
        var: "SURGE_SCALING_TICK",
        default: "15s",
        meaning: "how often events, expiries and the forecast are applied",
    },
    Setting {
        var: "SURGE_WARM_URLS",
        default: "/api/elections",
        meaning: "paths warmed when an event with warm_cache starts",
    },
    Setting {
        var: "SURGE_POD_CAPACITY_RPS",
        default: "unset: no forecast floor",
        meaning: "requests/s one pod sustains (from surge-load capacity)",
    },
    Setting {
        var: "SURGE_PREDICTIVE_WORKLOAD",
        default: "first managed workload",
        meaning: "the workload whose floor the forecast sets",
    },
    Setting {
        var: "SURGE_LOOK_AHEAD_MINUTES",
        default: "15",
        meaning: "forecast horizon",
    },
    Setting {
        var: "SURGE_L1_MAX_ITEMS",
        default: "10000",
        meaning: "L1 bounds (entries; bytes, counting a fixed per-entry cost)",
    },
    Setting {
        var: "SURGE_L1_MAX_BYTES",
        default: "256 MiB",
        meaning: "L1 bounds (entries; bytes, counting a fixed per-entry cost)",
    },
];

/// The `--help` text listing every setting.
pub fn help() -> String {
    let mut text = String::from(
        "Settings (environment variables; a secret also as <NAME>_FILE; any as a key of the SURGE_CONFIG TOML file, lower case without SURGE_):\n",
    );
    for s in SETTINGS {
        text.push_str(&format!(
            "  {}\n      {} [default: {}]\n",
            s.var, s.meaning, s.default
        ));
    }
    text
}
