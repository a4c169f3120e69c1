//! Tenant-isolation checks that need no I/O: spotting the request pattern of a prefix-cache
//! timing probe. (Cross-tenant *questions* are scored by the risk scorer's
//! `cross_tenant_probing` factor; the gateway turns its hits into isolation events.)

mod prefix_probe;

pub use prefix_probe::{PrefixProbeConfig, PrefixProbeWindow, ProbeObservation};
