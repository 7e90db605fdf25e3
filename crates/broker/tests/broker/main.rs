//! Tests of the broker adapters: one contract suite (`contract`) run against the in-process
//! hub (`local`) and against Redis (`redis`), plus what only Redis has (reconnection, lag,
//! leases, outages through a TCP proxy we can cut).

mod contract;
mod local;
mod proxy;
mod redis;
mod redis_cluster;
mod support;
mod throttle;
