//! riverbed
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod broadcast;
pub mod bus;
pub mod context;
pub mod id;
pub mod runtime;
pub mod stats;

pub use context::FlowContext;
