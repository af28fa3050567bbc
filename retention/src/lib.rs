//! # evault-retention (being written)
