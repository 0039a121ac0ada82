//! Zero-copy views of the protocols the dataplane speaks.
