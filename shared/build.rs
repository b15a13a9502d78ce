//! Converts the shipped policy (TOML, for people) to JSON at build time, so targets that never
//! parse TOML (the edge's Wasm) do not carry a TOML parser.

use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=policy/default.toml");
    let text =
        std::fs::read_to_string("policy/default.toml").expect("policy/default.toml is readable");
    let value: toml::Value = toml::from_str(&text).expect("policy/default.toml is valid TOML");
    let json = serde_json::to_string(&value).expect("TOML values convert to JSON");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("default_policy.json");
    std::fs::write(out, json).expect("OUT_DIR is writable");
}
