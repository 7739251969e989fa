//! Synthetic workloads for parevm (being written).
