//! The retail camera's analytics application: frames in, people out.
//!
//! Stages, each a module with its own error type:
//! - [`capture`]: frame sources (V4L2, files, synthetic) behind one trait;
//! - [`preprocess`]: colour conversion, resize and normalisation into the
//!   model's input tensor;
//! - [`detect`]: inference backends behind one trait, output decoders, NMS;
//! - [`model`]: model manifests, fetching and verifying weights;
//! - [`config`]: the typed configuration, validated once at the edge;
//! - [`pipeline`]: source → detector, writing detections as JSON lines;
//! - [`bench`] and [`demo`]: the `bench` and `demo` commands.

pub mod bench;
#[cfg(feature = "embedded-broker")]
pub mod broker;
pub mod capture;
pub mod clock_gate;
pub mod config;
pub mod config_store;
pub mod demo;
pub mod detect;
pub mod health;
pub mod hw;
pub mod jsonl;
pub mod link;
pub mod model;
pub mod model_package;
pub mod outbox;
pub mod preprocess;
pub mod reference_store;
pub mod runtime;
pub mod sequence_store;
pub mod snapshot;
pub mod summary;
pub mod tensor;
