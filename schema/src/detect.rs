//! Content-based format detection (being written).
