//! Pieces of the `switchyard` binary that its end-to-end tests share.

pub mod netns;
