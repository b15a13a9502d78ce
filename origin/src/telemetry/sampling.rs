//! Head sampling of requests, decided before the request's span exists: a request the
//! sampler drops gets no span at all, so it costs nothing in the tracing layers (on a cache
//! hit the span is most of the work), and still answers with a `traceparent` (flag 00) and a
//! request id. Configured with the standard `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG`; the default is the specification's, `parentbased_always_on`:
//! every request is traced unless its caller said not to.
//!
//! The SDK's own sampler is then set to agree ([`Sampling::sdk`]): it records whatever was
//! decided here.

use std::sync::OnceLock;

use opentelemetry_sdk::trace::Sampler;
use surge_shared::trace::TraceParent;

/// The process's sampler, set once with the tracing subscriber it belongs to.
static CONFIGURED: OnceLock<Sampling> = OnceLock::new();

/// The sampler [`install`]ed for this process; the default before (or without) one.
pub fn configured() -> Sampling {
    CONFIGURED.get().copied().unwrap_or_default()
}

/// Makes `sampling` the process's sampler (once; later calls change nothing).
pub fn install(sampling: Sampling) {
    let _ = CONFIGURED.set(sampling);
}

/// The sampler's decision for a request, made before the request reached the router (by the
/// connection front) and carried in its extensions, so it is drawn once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drawn(pub bool);

/// What the sampler does with a trace that starts here.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    /// Record it.
    Always,
    /// Drop it.
    Never,
    /// Record this fraction (0–1) of them.
    Ratio(f64),
}

/// The configured sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// For a request that arrives without a (valid) `traceparent`, or for every request when
    /// not `parent_based`.
    root: Root,
    /// Whether a caller's sampled flag decides.
    parent_based: bool,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            root: Root::Always,
            parent_based: true,
        }
    }
}

impl Sampling {
    /// Reads `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`, and their
    /// `parentbased_` forms) and `OTEL_TRACES_SAMPLER_ARG` (the ratio, 0–1, default 1).
    pub fn parse(sampler: Option<&str>, arg: Option<&str>) -> Result<Self, String> {
        let ratio = || match arg.map(str::trim) {
            None | Some("") => Ok(1.0),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    format!(
                        "OTEL_TRACES_SAMPLER_ARG={text:?} must be a ratio from 0 to 1, e.g. 0.01"
                    )
                }),
        };
        let name = sampler.map(str::trim).unwrap_or("");
        let (parent_based, root) = match name.strip_prefix("parentbased_") {
            Some(root) => (true, root),
            None if name.is_empty() => (true, "always_on"),
            None => (false, name),
        };
        let root = match root {
            "always_on" => Root::Always,
            "always_off" => Root::Never,
            "traceidratio" => Root::Ratio(ratio()?),
            _ => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER={name:?} is not a sampler here: write always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
                ));
            }
        };
        Ok(Self { root, parent_based })
    }

    /// Whether a request whose `traceparent` header is `given` is traced; `draw` is a uniform
    /// number in [0, 1) for a ratio.
    pub fn records(&self, given: Option<&str>, draw: impl FnOnce() -> f64) -> bool {
        if self.parent_based
            && let Some(caller) = given.and_then(TraceParent::parse)
        {
            return caller.sampled;
        }
        match self.root {
            Root::Always => true,
            Root::Never => false,
            Root::Ratio(ratio) => draw() < ratio,
        }
    }

    /// The SDK sampler that records what [`Sampling::records`] let through: the decision is
    /// made before a span exists, so a span that is made is recorded (a parent-based sampler
    /// still follows an unsampled caller for spans outside requests).
    pub fn sdk(&self) -> Sampler {
        if self.parent_based {
            Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
        } else {
            Sampler::AlwaysOn
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

    fn parse(sampler: &str, arg: Option<&str>) -> Sampling {
        Sampling::parse(Some(sampler), arg).expect("a sampler")
    }

    #[test]
    fn the_default_traces_every_request_unless_its_caller_said_not_to() {
        let default = Sampling::parse(None, None).expect("default");
        assert_eq!(default, Sampling::default());
        assert!(default.records(None, || 0.99));
        assert!(default.records(Some("garbage"), || 0.99));
        assert!(default.records(Some(SAMPLED), || 0.99));
        assert!(!default.records(Some(UNSAMPLED), || 0.0));
    }

    #[test]
    fn a_ratio_samples_roots_and_parent_based_follows_callers() {
        let ratio = parse("parentbased_traceidratio", Some("0.25"));
        assert!(ratio.records(None, || 0.1));
        assert!(!ratio.records(None, || 0.3));
        assert!(ratio.records(Some(SAMPLED), || 0.9), "the caller decides");
        assert!(!ratio.records(Some(UNSAMPLED), || 0.0));
        let plain = parse("traceidratio", Some("0.25"));
        assert!(
            !plain.records(Some(SAMPLED), || 0.9),
            "only the ratio decides"
        );
        assert!(plain.records(Some(UNSAMPLED), || 0.1));
        assert!(!parse("always_off", None).records(Some(SAMPLED), || 0.0));
        assert!(parse("always_on", None).records(Some(UNSAMPLED), || 0.9));
        assert!(!parse("parentbased_always_off", None).records(None, || 0.0));
        assert!(parse("parentbased_always_off", None).records(Some(SAMPLED), || 0.9));
        assert!(
            parse("traceidratio", None).records(None, || 0.999),
            "the ratio defaults to 1"
        );
    }

    #[test]
    fn bad_settings_are_refused_naming_the_variable_and_the_choices() {
        let e = Sampling::parse(Some("jaeger_remote"), None).expect_err("refused");
        assert!(
            e.contains("OTEL_TRACES_SAMPLER") && e.contains("parentbased_traceidratio"),
            "{e}"
        );
        for arg in ["1.5", "-0.1", "half"] {
            let e = Sampling::parse(Some("traceidratio"), Some(arg)).expect_err("refused");
            assert!(
                e.contains("OTEL_TRACES_SAMPLER_ARG") && e.contains("0 to 1"),
                "{e}"
            );
        }
    }
}
