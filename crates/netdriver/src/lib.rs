//! The bridge network driver, Docker's `bridge` driver rebuilt on the kernel's own
//! interfaces: [`link`] creates bridges and veth pairs and configures the container's
//! side inside its namespace ([`netns`]) over rtnetlink; [`nft`] keeps masquerading,
//! published-port DNAT and network isolation in one nftables table that Berth owns
//! and rewrites atomically; [`proxy`] is the userland proxy that makes published ports
//! answer on the host's loopback; [`iptables`] keeps the accepts Berth's bridges
//! need in the host's iptables FORWARD chain (where another daemon's DROP policy
//! would stop them) and [`hostfw`] in a native nftables firewall that drops by
//! default; [`dns`] is the resolver at 127.0.0.11 inside each
//! container on a user-defined network; [`subnet`] is the address arithmetic.
//!
//! Nothing here knows about containers or the API: callers pass names, addresses
//! and paths.

pub mod dns;
pub mod hostfw;
pub mod iptables;
pub mod lanlink;
pub mod link;
pub mod netns;
pub mod nft;
pub mod proxy;
pub mod subnet;

/// The driver's one error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("network namespace {path}: {msg}")]
    Netns { path: String, msg: String },
    #[error("nftables: {0}")]
    Nft(String),
    #[error("iptables: {0}")]
    Iptables(String),
    #[error("{0}")]
    Bind(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
