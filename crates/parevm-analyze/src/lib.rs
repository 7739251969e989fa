//! Block parallelism analysis (being written).
