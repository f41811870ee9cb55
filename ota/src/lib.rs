//! Signed A/B updates for the camera (issue 5, in progress).
//!
//! So far: [`env`], the U-Boot environment codec that slot switching and
//! boot counting are written through.

pub mod env;
