//! Validation of link values (being written).
