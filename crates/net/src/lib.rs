//! The framed network layer: cutting byte streams into frames, the accept
//! loop, one task pair per connection, and each connection's bounded outbound
//! queue.
//!
//! It knows nothing of JSON or chat: a [`Handler`] gets each inbound frame
//! and answers through the connection's [`Outbound`] queue.

mod codec;
mod outbound;
pub mod proxy;
mod server;

pub use codec::{FrameCodec, Inbound};
pub use outbound::{Outbound, OutboundRx, SendError};
pub use proxy::AddrRange;
pub use server::{
    Flow, Handler, LISTEN_BACKLOG, NetConfig, Peer, PeerWrite, Plain, ProxyConfig, Transport, listen, serve,
    serve_with, socket_peer_has_closed,
};
