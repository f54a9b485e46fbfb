//! The node agent (kubelet): registers its node, keeps the node's Lease and status fresh, and runs
//! the pods bound to it in real containers through the CRI v1 API of containerd.

pub mod admission;
pub mod agent;
pub mod bootstrap;
pub mod containerd;
pub mod cri;
pub mod dns;
pub mod env;
pub mod events;
#[cfg(test)]
pub mod fake;
pub mod image;
pub mod layout;
pub mod network;
pub mod node;
pub mod pod;
pub mod probes;
pub mod pull;
pub mod routes;
pub mod server;
pub mod volumes;
