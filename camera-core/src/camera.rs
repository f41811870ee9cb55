//! The camera state machine (being built).
