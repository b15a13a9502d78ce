//! Surge's edge: the request pipeline that runs in Cloudflare Workers and as a wasi-http
//! component. Keys, tags, routes, limits and regions all come from `surge-shared`.

pub mod error_page;
