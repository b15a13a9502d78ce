//! `cargo xtask deploy --env <name>`: checks that a wrangler environment can go to
//! production, then deploys it. Refused: an environment wrangler.toml does not define, a
//! `workers.dev` URL (it would bypass the zone's WAF and rate-limit rules), no route, no
//! `[observability]`, missing bindings, and a `SURGE_GEO` that is missing or names an origin
//! that is not a public `https://` address (a loopback origin would answer nobody).

use std::net::IpAddr;

use surge_shared::GeoTable;

/// What `check` looks at in `[env.<name>]`, whatever the rest of wrangler.toml holds.
pub fn check(wrangler_toml: &str, env: &str) -> Result<(), String> {
    let doc: toml::Table = wrangler_toml
        .parse()
        .map_err(|e| format!("wrangler.toml does not parse: {e}"))?;
    let section = doc
        .get("env")
        .and_then(|e| e.get(env))
        .and_then(toml::Value::as_table)
        .ok_or_else(|| format!("wrangler.toml has no [env.{env}]; add one to deploy it"))?;
    let at = |key: &str| format!("[env.{env}] {key}");
    if section.get("workers_dev").and_then(toml::Value::as_bool) != Some(false) {
        return Err(format!(
            "{}: set workers_dev = false (a workers.dev URL bypasses the zone's WAF and rate limits)",
            at("workers_dev")
        ));
    }
    let routes = section.get("routes").and_then(toml::Value::as_array);
    if routes.is_none_or(|r| r.is_empty()) {
        return Err(format!(
            "{}: list the zone's routes, e.g. [{{ pattern = \"vote.example/*\", zone_name = \"vote.example\" }}]",
            at("routes")
        ));
    }
    let observed = section
        .get("observability")
        .and_then(|o| o.get("enabled"))
        .and_then(toml::Value::as_bool);
    if observed != Some(true) {
        return Err(format!(
            "{}: set [env.{env}.observability] enabled = true",
            at("observability")
        ));
    }
    for binding in ["ratelimits", "durable_objects"] {
        if section.get(binding).is_none() {
            return Err(format!(
                "{}: bindings are not inherited by environments; repeat the top-level ones",
                at(binding)
            ));
        }
    }
    let geo = section
        .get("vars")
        .and_then(|v| v.get("SURGE_GEO"))
        .and_then(toml::Value::as_str)
        .ok_or_else(|| {
            format!("SURGE_GEO is missing from [env.{env}.vars]: list the regions' public origins")
        })?;
    let table = GeoTable::from_json_str(geo).map_err(|e| format!("SURGE_GEO: {e}"))?;
    for (name, region) in &table.regions {
        public_https(&region.origin).map_err(|why| {
            format!(
                "SURGE_GEO: region {name}'s origin {:?} {why}",
                region.origin
            )
        })?;
    }
    Ok(())
}

/// Whether `origin` is an https URL of a host the internet can reach.
fn public_https(origin: &str) -> Result<(), &'static str> {
    let rest = origin
        .strip_prefix("https://")
        .ok_or("is not https: the edge talks to origins over TLS in production")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let local = host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_unspecified(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
        });
    if host.is_empty() || local {
        return Err("is a loopback or private address, which nobody on the internet reaches");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../wrangler.toml");

    #[test]
    fn the_shipped_environments_can_be_deployed_and_the_local_default_cannot() {
        check(SHIPPED, "production").expect("production");
        check(SHIPPED, "staging").expect("staging");
        assert!(check(SHIPPED, "nowhere").is_err_and(|e| e.contains("[env.nowhere]")));
    }

    #[test]
    fn a_loopback_or_missing_origin_names_surge_geo() {
        let production = SHIPPED
            .split("\n[env.production.vars]")
            .nth(1)
            .and_then(|rest| rest.lines().find(|l| l.starts_with("SURGE_GEO")))
            .expect("a production SURGE_GEO");
        for bad in [
            "http://127.0.0.1:8080",
            "https://127.0.0.1:8443",
            "https://localhost",
            "https://10.0.0.7",
            "https://[::1]:443",
            "http://origin.vote.example",
        ] {
            let geo = format!(
                r#"SURGE_GEO = '{{"regions":{{"eu":{{"origin":"{bad}","timeout":"10s"}}}},"default":["eu"]}}'"#
            );
            let err = check(&SHIPPED.replace(production, &geo), "production").expect_err("refused");
            assert!(err.starts_with("SURGE_GEO:") && err.contains(bad), "{err}");
        }
        let err = check(&SHIPPED.replace(production, ""), "production").expect_err("missing");
        assert!(err.starts_with("SURGE_GEO is missing"), "{err}");
        let err = check(
            &SHIPPED.replacen("workers_dev = false", "workers_dev = true", 1),
            "production",
        )
        .expect_err("workers.dev");
        assert!(err.contains("workers_dev"), "{err}");
    }
}
