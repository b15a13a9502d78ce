//! The capacity model: from measured per-core throughput and hit ratios, how many origin
//! pods, Redis shards, Postgres replicas and primaries a peak needs, and what the edge hit
//! ratio must be for a given pod budget. Plain arithmetic, documented in `bench/RESULTS.md`:
//!
//! The mix is the reference scenario's by default: 40 % votes and 10 % logins, which no cache
//! can answer, and 50 % reads.
//!
//! - reads/s            = peak × (1 − vote share − login share)
//! - writes/s           = peak × (vote share + login share) (never cached)
//! - origin requests/s  = reads/s × (1 − edge hit ratio) + writes/s
//! - origin pods        = ⌈origin rps ÷ (rps per core × cores per pod × utilisation)⌉ + 1 spare
//! - L2 reads/s         = reads/s × (1 − edge hit ratio) × (1 − L1 hit ratio)
//! - Redis shards       = max(3, ⌈L2 reads/s ÷ (ops per shard × utilisation)⌉)
//! - database reads/s   = L2 reads/s × (1 − L2 hit ratio) + logins/s (one voter lookup each)
//! - read replicas      = max(1, ⌈database reads/s ÷ (reads per replica × utilisation)⌉)
//! - votes/s            = peak × vote share
//! - vote primaries     = max(1, ⌈votes/s ÷ (votes per primary × utilisation)⌉) — shards
//! - edge hit ratio needed for a budget of P pods
//!   = 1 − ((P − 1) × pod capacity − writes/s) ÷ reads/s

use serde::Serialize;

/// The inputs (also the `surge-load capacity-model` flags, with measured defaults).
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ModelInputs {
    /// Peak requests/s at the edge.
    #[arg(long, default_value_t = 100_000.0)]
    pub peak_rps: f64,
    /// Share of reads the edge answers from its cache.
    #[arg(long, default_value_t = 0.9)]
    pub edge_hit_ratio: f64,
    /// Origin requests/s one core sustains (the measured L1-hit figure, halved for misses,
    /// TLS and the real mix).
    #[arg(long, default_value_t = 7_500.0)]
    pub origin_rps_per_core: f64,
    /// Cores per origin pod.
    #[arg(long, default_value_t = 2.0)]
    pub cores_per_pod: f64,
    /// Target utilisation of every component (headroom for bursts and failover).
    #[arg(long, default_value_t = 0.6)]
    pub utilisation: f64,
    /// Share of requests that are votes (the reference scenario: 40 %).
    #[arg(long, default_value_t = 0.4)]
    pub vote_share: f64,
    /// Share of requests that are logins (the reference scenario: 10 %).
    #[arg(long, default_value_t = 0.1)]
    pub login_share: f64,
    /// L1 hit ratio at the origin (measured: a `surge-load` report).
    #[arg(long, default_value_t = 0.99)]
    pub l1_hit_ratio: f64,
    /// L2 hit ratio for L1 misses.
    #[arg(long, default_value_t = 0.5)]
    pub l2_hit_ratio: f64,
    /// Operations/s one Redis shard sustains.
    #[arg(long, default_value_t = 80_000.0)]
    pub redis_ops_per_shard: f64,
    /// Read queries/s one Postgres replica sustains.
    #[arg(long, default_value_t = 5_000.0)]
    pub reads_per_replica: f64,
    /// Votes/s one Postgres primary sustains with group commit (bench/RESULTS.md).
    #[arg(long, default_value_t = 3_000.0)]
    pub writes_per_primary: f64,
    /// Origin pods available: prints the edge hit ratio they need.
    #[arg(long)]
    pub pod_budget: Option<u32>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelOutput {
    /// Requests/s reaching the origin.
    pub origin_rps: f64,
    /// Requests/s one pod takes at the target utilisation.
    pub pod_capacity_rps: f64,
    /// Origin pods (one spare included).
    pub origin_pods: u32,
    /// Reads/s reaching Redis.
    pub l2_reads: f64,
    /// Redis shards (masters).
    pub redis_shards: u32,
    /// Reads/s reaching Postgres.
    pub database_reads: f64,
    /// Read replicas.
    pub read_replicas: u32,
    /// Votes/s.
    pub votes: f64,
    /// Postgres primaries (vote shards).
    pub primaries: u32,
    /// Edge hit ratio needed for `pod_budget` pods, if one was given.
    pub edge_hit_ratio_needed: Option<f64>,
}

fn ceil(x: f64) -> u32 {
    if x.is_finite() && x > 0.0 {
        x.ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

impl ModelInputs {
    /// Checks every input is in range; the error names the flag.
    pub fn validate(&self) -> Result<(), String> {
        let ratio = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("--{name} must be between 0 and 1, got {v}"))
            }
        };
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("--{name} must be above 0, got {v}"))
            }
        };
        positive("peak-rps", self.peak_rps)?;
        positive("origin-rps-per-core", self.origin_rps_per_core)?;
        positive("cores-per-pod", self.cores_per_pod)?;
        positive("redis-ops-per-shard", self.redis_ops_per_shard)?;
        positive("reads-per-replica", self.reads_per_replica)?;
        positive("writes-per-primary", self.writes_per_primary)?;
        ratio("edge-hit-ratio", self.edge_hit_ratio)?;
        ratio("vote-share", self.vote_share)?;
        ratio("login-share", self.login_share)?;
        if self.vote_share + self.login_share > 1.0 {
            return Err(format!(
                "--vote-share and --login-share add up to more than 1 ({} + {})",
                self.vote_share, self.login_share
            ));
        }
        ratio("l1-hit-ratio", self.l1_hit_ratio)?;
        ratio("l2-hit-ratio", self.l2_hit_ratio)?;
        if !(self.utilisation > 0.0 && self.utilisation <= 1.0) {
            return Err(format!(
                "--utilisation must be in (0, 1], got {}",
                self.utilisation
            ));
        }
        Ok(())
    }

    /// Runs the model.
    pub fn solve(&self) -> ModelOutput {
        let reads = self.peak_rps * (1.0 - self.vote_share - self.login_share);
        let logins = self.peak_rps * self.login_share;
        let votes = self.peak_rps * self.vote_share;
        let writes = votes + logins;
        let origin_reads = reads * (1.0 - self.edge_hit_ratio);
        let origin_rps = origin_reads + writes;
        let pod_capacity_rps = self.origin_rps_per_core * self.cores_per_pod * self.utilisation;
        let l2_reads = origin_reads * (1.0 - self.l1_hit_ratio);
        let database_reads = l2_reads * (1.0 - self.l2_hit_ratio) + logins;
        ModelOutput {
            origin_rps,
            pod_capacity_rps,
            origin_pods: ceil(origin_rps / pod_capacity_rps) + 1,
            l2_reads,
            redis_shards: ceil(l2_reads / (self.redis_ops_per_shard * self.utilisation)).max(3),
            database_reads,
            read_replicas: ceil(database_reads / (self.reads_per_replica * self.utilisation))
                .max(1),
            votes,
            primaries: ceil(votes / (self.writes_per_primary * self.utilisation)).max(1),
            edge_hit_ratio_needed: self.pod_budget.map(|pods| {
                let serving = f64::from(pods.saturating_sub(1)) * pod_capacity_rps;
                if reads > 0.0 {
                    (1.0 - (serving - writes) / reads).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            }),
        }
    }
}

impl ModelOutput {
    /// A readable summary.
    pub fn table(&self) -> String {
        let mut out = format!(
            "origin requests/s      {:>12.0}\npod capacity (req/s)   {:>12.0}\norigin pods            {:>12}  (one spare included)\n\
             L2 reads/s             {:>12.0}\nRedis shards           {:>12}\ndatabase reads/s       {:>12.0}\n\
             read replicas          {:>12}\nvotes/s                {:>12.0}\nPostgres primaries     {:>12}\n",
            self.origin_rps,
            self.pod_capacity_rps,
            self.origin_pods,
            self.l2_reads,
            self.redis_shards,
            self.database_reads,
            self.read_replicas,
            self.votes,
            self.primaries
        );
        if let Some(h) = self.edge_hit_ratio_needed {
            out.push_str(&format!("edge hit ratio needed  {:>11.1} %\n", h * 100.0));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> ModelInputs {
        ModelInputs {
            peak_rps: 100_000.0,
            edge_hit_ratio: 0.9,
            origin_rps_per_core: 10_000.0,
            cores_per_pod: 2.0,
            utilisation: 0.5,
            vote_share: 0.4,
            login_share: 0.1,
            l1_hit_ratio: 0.99,
            l2_hit_ratio: 0.5,
            redis_ops_per_shard: 50_000.0,
            reads_per_replica: 1_000.0,
            writes_per_primary: 2_000.0,
            pod_budget: Some(5),
        }
    }

    #[test]
    fn the_defaults_are_the_reference_mix() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            inputs: ModelInputs,
        }
        let m = Cli::parse_from(["model"]).inputs;
        assert_eq!((m.vote_share, m.login_share), (0.4, 0.1));
        assert!(m.validate().is_ok());
        let mut bad = m.clone();
        bad.login_share = 0.7;
        assert!(bad.validate().unwrap_err().contains("--login-share"));
    }

    #[test]
    fn the_model_gives_the_worked_example() {
        let m = inputs();
        assert!(m.validate().is_ok());
        let out = m.solve();
        // 50,000 reads/s, 90 % at the edge: 5,000 reach the origin with 40,000 votes and
        // 10,000 logins; a pod takes 10,000 at 50 % of 2 × 10,000: 6 pods with the spare.
        assert!((out.origin_rps - 55_000.0).abs() < 1e-6);
        assert_eq!(out.origin_pods, 7);
        // 5,000 × 0.01 = 50 L2 reads/s; 25 reach Postgres, plus 10,000 voter lookups.
        assert!((out.l2_reads - 50.0).abs() < 1e-6);
        assert_eq!(out.redis_shards, 3);
        assert!((out.database_reads - 10_025.0).abs() < 1e-6);
        assert_eq!(out.read_replicas, 21);
        // 40,000 votes/s over 2,000 per primary at 50 %: 40 primaries.
        assert_eq!(out.primaries, 40);
        // 4 serving pods × 10,000 = 40,000 cannot even carry the 50,000 writes: the edge
        // would have to answer every read and more, so the answer is capped at 100 %.
        assert!((out.edge_hit_ratio_needed.unwrap_or(0.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn out_of_range_inputs_name_their_flag() {
        let mut m = inputs();
        m.edge_hit_ratio = 1.5;
        assert!(m.validate().unwrap_err().contains("--edge-hit-ratio"));
        let mut m = inputs();
        m.utilisation = 0.0;
        assert!(m.validate().unwrap_err().contains("--utilisation"));
    }
}
