//! evault's own documents (being written).
