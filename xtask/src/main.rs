//! Project automation (`cargo xtask …`): `setup` installs what the tests need (idempotent),
//! `test` runs the whole suite, `run` starts Surge locally.

fn main() {}
